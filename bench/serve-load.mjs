// `kiln serve` under load, on loopback only, bounded in count and time (BENCHMARKS.md):
//  1. overhead: the same digits job through the server vs `kiln train`, alternating, REPEATS times;
//  2. load: while a job trains, 50 clients poll its status and 20 follow its event stream for at
//     most 30 s; requests/s, p50/p99 latency, errors, and the job's training time vs no load.
// Usage: node bench/serve-load.mjs [path/to/kiln] (default target/release/kiln).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const kiln = process.argv[2] ?? join(repo, "target", "release", "kiln");
const REPEATS = Number(process.env.REPEATS ?? 3);
const POLLERS = 50;
const FOLLOWERS = 20;
const LOAD_SECONDS = 30;
/** Pause between one poller's requests (0: each poller sends its next request at once). */
const POLL_INTERVAL_MS = Number(process.env.POLL_INTERVAL_MS ?? 0);
const env = { ...process.env, XDG_RUNTIME_DIR: tmpdir(), RAYON_NUM_THREADS: "1" };

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

function startServer(dataDir) {
  const child = spawn(kiln, ["serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir], {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((ok, fail) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) ok({ child, url: m[1] });
    });
    child.on("exit", (code) => fail(new Error(`server exited ${code}`)));
  });
}

async function submit(url, config) {
  const r = await fetch(`${url}/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ config }),
  });
  if (r.status !== 202) throw new Error(`submit: ${r.status} ${await r.text()}`);
  return (await r.json()).id;
}

async function waitDone(url, id) {
  for (;;) {
    const job = await (await fetch(`${url}/v1/jobs/${id}`)).json();
    if (job.status === "completed") return job;
    if (job.status === "failed" || job.status === "cancelled") throw new Error(`${id}: ${job.error}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Wall time of one job through the server, from submit to its final status. */
async function serverJob(url, config) {
  const t0 = performance.now();
  const id = await submit(url, config);
  const job = await waitDone(url, id);
  return { wall: (performance.now() - t0) / 1000, train: job.result.durationSecs, progress: job.progress };
}

/** Wall time of the same job with `kiln train` (process start to exit). */
function cliJob(config, dir, i) {
  const path = join(dir, `c${i}.json`);
  writeFileSync(path, JSON.stringify(config));
  const t0 = performance.now();
  const out = execFileSync(
    kiln,
    ["--store", join(dir, "store"), "train", path, "--out", join(dir, `run${i}`), "--json"],
    { env, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
  );
  return { wall: (performance.now() - t0) / 1000, train: JSON.parse(out).durationSecs };
}

async function poller(url, id, until, stats) {
  while (performance.now() < until) {
    const t0 = performance.now();
    try {
      const r = await fetch(`${url}/v1/jobs/${id}`);
      await r.arrayBuffer();
      if (!r.ok) stats.errors++;
    } catch {
      stats.errors++;
    }
    stats.latencies.push(performance.now() - t0);
    if (POLL_INTERVAL_MS > 0) await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
  }
}

async function follower(url, id, until, stats) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(0, until - performance.now()));
  try {
    const r = await fetch(`${url}/v1/jobs/${id}/events`, { signal: controller.signal });
    if (!r.ok) {
      stats.errors++;
      return;
    }
    for await (const chunk of r.body) stats.eventBytes += chunk.length;
    stats.streamsEnded++;
  } catch (e) {
    if (e.name !== "AbortError") stats.errors++;
  } finally {
    clearTimeout(timer);
  }
}

const dir = mkdtempSync(join(tmpdir(), "kiln-serve-bench-"));
const server = await startServer(join(dir, "data"));
try {
  // 1. Overhead: the README's digits recipe, alternating CLI and server.
  const digits = {
    name: "bench-digits",
    seed: 1,
    model: { preset: "mlp", hidden: [128] },
    training: { num_passes: 20, batch_size: 32 },
  };
  const cli = [],
    served = [];
  for (let i = 0; i < REPEATS; i++) {
    cli.push(cliJob(digits, dir, i));
    served.push(await serverJob(server.url, digits));
  }
  // 2. Load: a wider MLP on digits sized to train about LOAD_SECONDS, first alone, then under load.
  const wide = { ...digits, name: "bench-load", model: { preset: "mlp", hidden: [512, 512] } };
  const probe = await serverJob(server.url, { ...wide, training: { num_passes: 20, batch_size: 32 } });
  const epochs = Math.max(20, Math.round((LOAD_SECONDS * 20) / probe.train));
  const long = { ...wide, training: { num_passes: epochs, batch_size: 32 } };
  const quiet = await serverJob(server.url, long);
  const id = await submit(server.url, long);
  const progressOf = async () => (await (await fetch(`${server.url}/v1/jobs/${id}`)).json()).progress;
  let start;
  while (!(start = await progressOf())) await new Promise((r) => setTimeout(r, 20));
  const stats = { latencies: [], errors: 0, eventBytes: 0, streamsEnded: 0 };
  const t0 = performance.now();
  const until = t0 + LOAD_SECONDS * 1000;
  const done = waitDone(server.url, id);
  let finished = false;
  done.then(
    () => {
      finished = true;
    },
    () => {
      finished = true;
    },
  );
  const clients = [
    ...Array.from({ length: POLLERS }, () => poller(server.url, id, until, stats)),
    ...Array.from({ length: FOLLOWERS }, () => follower(server.url, id, until, stats)),
  ];
  await Promise.all(clients);
  const end = await progressOf();
  const finishedInWindow = finished;
  const seconds = (performance.now() - t0) / 1000;
  const loaded = await done;
  // Training speed in the load window (steps/s between the first and last progress reports
  // seen in it) against the same job's average speed alone.
  const loadedRate = (end.step - start.step) / Math.max(1e-9, end.elapsedSeconds - start.elapsedSeconds);
  const quietRate = quiet.progress.step / quiet.progress.elapsedSeconds;
  const report = {
    date: new Date().toISOString().slice(0, 10),
    repeats: REPEATS,
    overhead: {
      cliWallMedian: median(cli.map((r) => r.wall)),
      serverWallMedian: median(served.map((r) => r.wall)),
      cliTrainMedian: median(cli.map((r) => r.train)),
      serverTrainMedian: median(served.map((r) => r.train)),
      cliWalls: cli.map((r) => r.wall),
      serverWalls: served.map((r) => r.wall),
    },
    load: {
      epochs,
      pollers: POLLERS,
      followers: FOLLOWERS,
      seconds,
      requests: stats.latencies.length,
      requestsPerSecond: stats.latencies.length / seconds,
      p50ms: quantile(stats.latencies, 0.5),
      p99ms: quantile(stats.latencies, 0.99),
      errors: stats.errors,
      streamsEnded: stats.streamsEnded,
      eventBytes: stats.eventBytes,
      pollIntervalMs: POLL_INTERVAL_MS,
      jobFinishedDuringLoad: finishedInWindow,
      trainSecondsQuiet: quiet.train,
      trainSecondsLoaded: loaded.result.durationSecs,
      stepsPerSecondQuiet: quietRate,
      stepsPerSecondLoaded: loadedRate,
      slowdown: quietRate / loadedRate,
    },
  };
  console.log(JSON.stringify(report, null, 2));
} finally {
  server.child.kill("SIGTERM");
}
