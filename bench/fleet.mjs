// A fleet of `kiln serve` workers (BENCHMARKS.md), on loopback only, bounded in count and time:
//  1. throughput: JOBS small digits jobs through 1 worker, then through 2 workers on one
//     PostgreSQL (one CPU thread each), alternating ROUNDS times: jobs per minute and the ratio;
//  2. fail-over: kill -9 the worker training a job; time from the kill to the job's next
//     training step on the other worker (lease LEASE_SECS), REPEATS times;
//  3. the shared database's cost: one worker on the embedded SQLite file vs on PostgreSQL,
//     alternating REPEATS times: submit → `started` event (queue latency) and submit → final
//     status (whole job) of a small job.
// PostgreSQL is a throwaway cluster started here (tests/fleet/services.mjs); objects go to a
// file:// store in a temporary directory. Usage: node bench/fleet.mjs [path/to/kiln]
// (default target/release/kiln; bench/run.sh builds it).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startPostgres } from "../tests/fleet/services.mjs";
import { readEvents } from "../tests/js/server-api.mjs";

const repo = resolve(import.meta.dirname, "..");
const kiln = process.argv[2] ?? join(repo, "target", "release", "kiln");
const JOBS = Number(process.env.JOBS ?? 16);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const REPEATS = Number(process.env.REPEATS ?? 5);
const LEASE_SECS = Number(process.env.LEASE_SECS ?? 4);
const env = { ...process.env, XDG_RUNTIME_DIR: tmpdir(), RAYON_NUM_THREADS: "1" };
/** A small digits job: the embedded default recipe (MLP 64→128→10), 20 epochs. */
const SMALL = { name: "fleet-bench", training: { num_passes: 20, batch_size: 32 } };
/** A job long enough to be killed mid-way, checkpointing every epoch. */
const LONG = {
  name: "fleet-failover",
  model: { preset: "mlp", hidden: [256, 256] },
  training: { num_passes: 60, batch_size: 16 },
  checkpoint: { every_epochs: 1, save_top_k: 1 },
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dirs = [];
const temp = (prefix) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
const servers = new Set();
process.on("exit", () => {
  for (const s of servers) s.child.kill("SIGKILL");
});

/** Starts a worker; resolves with {child, url, worker} once it listens. */
function startWorker(args, dataDir = temp("kiln-bench-worker-")) {
  const child = spawn(kiln, ["serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, ...args], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const server = { child, dataDir, log: "" };
  servers.add(server);
  child.stderr.on("data", (d) => {
    server.log += d;
  });
  server.exited = new Promise((ok) =>
    child.on("exit", () => {
      servers.delete(server);
      ok();
    }),
  );
  return new Promise((ok, fail) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+).*worker (worker-[0-9a-f-]+)/);
      if (m) {
        server.url = m[1];
        server.worker = m[2];
        ok(server);
      }
    });
    child.on("exit", (code) => fail(new Error(`worker exited ${code}: ${server.log}`)));
  });
}

async function stop(server, signal = "SIGTERM") {
  server.child.kill(signal);
  await server.exited;
}

async function submit(server, config) {
  const r = await fetch(`${server.url}/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ config }),
  });
  if (r.status !== 202) throw new Error(`submit: ${r.status} ${await r.text()}`);
  return (await r.json()).id;
}

async function job(server, id) {
  return (await fetch(`${server.url}/v1/jobs/${id}`)).json();
}

async function waitDone(server, id, timeoutMs = 600000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const row = await job(server, id);
    if (row.status === "completed") return row;
    if (row.status === "failed" || row.status === "cancelled") throw new Error(`${id}: ${row.error}`);
    await sleep(20);
  }
  throw new Error(`${id} did not end in ${timeoutMs} ms`);
}

/** Reads the job's events until `seen(event)` returns true (or the stream ends). */
const follow = (server, id, seen) => readEvents(server, id, { until: seen });

/** Jobs per minute of JOBS small jobs spread over `workers` (all submitted at once). */
async function throughput(workers) {
  const t0 = performance.now();
  const ids = [];
  for (let i = 0; i < JOBS; i++) ids.push(await submit(workers[i % workers.length], SMALL));
  const done = await Promise.all(ids.map((id, i) => waitDone(workers[i % workers.length], id)));
  const minutes = (performance.now() - t0) / 60000;
  return { perMinute: JOBS / minutes, ranOn: new Set(done.map((j) => j.workerId)).size };
}

async function main() {
  const pg = await startPostgres(["throughput1", "throughput2", "failover", "latency"]);
  const objects = (name) => `file://${temp(`kiln-bench-objects-${name}-`)}`;
  const results = {
    one: [],
    two: [],
    failover: [],
    sqlite: { started: [], done: [] },
    postgres: { started: [], done: [] },
  };
  try {
    // 1. Throughput: 1 worker vs 2 workers, each round on fresh workers (same database per size).
    const store1 = objects("1");
    const store2 = objects("2");
    for (let round = 0; round < ROUNDS; round++) {
      const solo = [await startWorker(["--database", pg.url("throughput1"), "--objects", store1])];
      const one = await throughput(solo);
      for (const w of solo) await stop(w);
      const pair = [
        await startWorker(["--database", pg.url("throughput2"), "--objects", store2]),
        await startWorker(["--database", pg.url("throughput2"), "--objects", store2]),
      ];
      const two = await throughput(pair);
      for (const w of pair) await stop(w);
      results.one.push(one.perMinute);
      results.two.push(two.perMinute);
      console.error(
        `throughput round ${round + 1}: 1 worker ${one.perMinute.toFixed(1)} jobs/min, 2 workers ${two.perMinute.toFixed(1)} jobs/min (ran on ${two.ranOn})`,
      );
    }

    // 2. Fail-over: kill -9 the holder once the job has a checkpoint; time to its next step elsewhere.
    const failStore = objects("failover");
    const lease = ["--lease-secs", String(LEASE_SECS)];
    for (let r = 0; r < REPEATS; r++) {
      const pair = [
        await startWorker(["--database", pg.url("failover"), "--objects", failStore, ...lease]),
        await startWorker(["--database", pg.url("failover"), "--objects", failStore, ...lease]),
      ];
      const id = await submit(pair[0], LONG);
      await follow(pair[0], id, (e) => e.event === "checkpoint" && e.data.epoch >= 2);
      const holder = (await job(pair[0], id)).workerId;
      const victim = pair.find((w) => w.worker === holder);
      const survivor = pair.find((w) => w !== victim);
      // The checkpoint's record follows its event: wait until the registry has it.
      while (!(await job(survivor, id)).checkpoint) await sleep(20);
      const killedAt = performance.now();
      await stop(victim, "SIGKILL");
      let takenOver = false;
      await follow(survivor, id, (e) => {
        if (e.event === "assigned" && e.data.worker === survivor.worker) takenOver = true;
        return takenOver && e.event === "progress";
      });
      const seconds = (performance.now() - killedAt) / 1000;
      results.failover.push(seconds);
      console.error(`fail-over ${r + 1}: ${seconds.toFixed(2)} s (lease ${LEASE_SECS} s)`);
      await fetch(`${survivor.url}/v1/jobs/${id}/cancel`, { method: "POST" });
      await stop(survivor);
    }

    // 3. Latency: SQLite vs PostgreSQL, one worker each, alternating.
    const sqliteDir = temp("kiln-bench-sqlite-");
    const latencyStore = objects("latency");
    for (let r = 0; r < REPEATS; r++) {
      for (const [name, args, dataDir] of [
        ["sqlite", [], sqliteDir],
        ["postgres", ["--database", pg.url("latency"), "--objects", latencyStore], undefined],
      ]) {
        const w = await startWorker(args, dataDir);
        await waitDone(w, await submit(w, SMALL)); // warm-up
        const t0 = performance.now();
        const id = await submit(w, SMALL);
        let started;
        await follow(w, id, (e) => {
          if (e.event === "started" && started === undefined) started = performance.now() - t0;
          return e.event === "status" && ["completed", "failed", "cancelled"].includes(e.data.status);
        });
        const done = performance.now() - t0;
        results[name].started.push(started);
        results[name].done.push(done);
        await stop(w);
      }
    }
  } finally {
    for (const s of servers) s.child.kill("SIGKILL");
    await pg.stop();
    for (const d of [...dirs, pg.dir]) rmSync(d, { recursive: true, force: true });
  }
  const fmt = (xs, digits = 1) => xs.map((x) => x.toFixed(digits)).join(", ");
  console.log(
    `# kiln fleet benchmark (${new Date().toISOString().slice(0, 10)}; ${JOBS} jobs, ${ROUNDS} rounds, ${REPEATS} repeats, lease ${LEASE_SECS} s)`,
  );
  console.log(`throughput, 1 worker: median ${median(results.one).toFixed(1)} jobs/min [${fmt(results.one)}]`);
  console.log(`throughput, 2 workers: median ${median(results.two).toFixed(1)} jobs/min [${fmt(results.two)}]`);
  console.log(`scaling (2 workers / 1 worker, medians): ${(median(results.two) / median(results.one)).toFixed(2)}x`);
  console.log(
    `fail-over, kill -9 -> next step elsewhere: median ${median(results.failover).toFixed(2)} s [${fmt(results.failover, 2)}]`,
  );
  for (const name of ["sqlite", "postgres"]) {
    console.log(
      `${name}: submit -> started median ${median(results[name].started).toFixed(1)} ms [${fmt(results[name].started)}]; submit -> completed median ${median(results[name].done).toFixed(1)} ms [${fmt(results[name].done)}]`,
    );
  }
  console.log(
    `postgres - sqlite (medians): started +${(median(results.postgres.started) - median(results.sqlite.started)).toFixed(1)} ms, completed +${(median(results.postgres.done) - median(results.sqlite.done)).toFixed(1)} ms`,
  );
}

await main();
