// Federated rounds on loopback (BENCHMARKS.md, "Federated training: the protocol's cost"):
// for CLIENTS = 1, 4, 16, 64 `kiln federate join` processes, ROUNDS rounds of tiny local work
// (MLP 64→8→10 on its share of the digits, one epoch) so that the protocol dominates, once with
// FedAvg and once with secure aggregation. Reported per configuration: the median round time
// (between consecutive rounds' closing), the server's CPU time per round (/proc), what one client
// sends per round (its update; with secure aggregation also its keys, sealed shares and revealed
// shares, as the server stored them) and downloads (the global model; the shares sealed for it).
// Usage: node bench/fed.mjs [path/to/kiln] (default target/release/kiln; `make bench-fed`
// builds it). CLIENTS="1 4" and ROUNDS=4 override the defaults.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";

const repo = resolve(import.meta.dirname, "..");
const kiln = process.argv[2] ?? join(repo, "target", "release", "kiln");
const CLIENTS = (process.env.CLIENTS ?? "1 4 16 64").split(/\s+/).filter(Boolean).map(Number);
const ROUNDS = Number(process.env.ROUNDS ?? 6);
const env = { ...process.env, XDG_RUNTIME_DIR: tmpdir(), RAYON_NUM_THREADS: "1" };
const CONFIG = {
  name: "fed-bench",
  model: { hidden: [8] },
  training: { num_passes: 1, batch_size: 16, weight_optimization: { optimization_method: "sgd", learning_rate: 0.05 } },
  data: { split: [0.9, 0.1, 0.0] },
};
const TICKS = 100; // Linux clock ticks per second (/proc/<pid>/stat)

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
const dirs = [];
const temp = (prefix) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
const children = new Set();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Starts `kiln serve`; resolves with {child, url, dataDir} once it listens. */
function startServer() {
  const dataDir = temp("kiln-fedbench-");
  const child = spawn(kiln, ["serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir], {
    env,
    stdio: ["ignore", "pipe", "ignore"],
  });
  children.add(child);
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve({ child, url: m[1], dataDir });
    });
    child.on("exit", (code) => reject(new Error(`kiln serve exited ${code}`)));
  });
}

/** The server's CPU seconds so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

async function json(url, init) {
  const response = await fetch(url, init);
  const body = await response.json();
  if (!response.ok) throw new Error(`${url}: ${JSON.stringify(body)}`);
  return body;
}

/** The digits as `n` CSV files (row i to client i mod n). */
function shares(n, dir) {
  const rows = gunzipSync(readFileSync(join(repo, "crate/data/digits.csv.gz")))
    .toString()
    .trim()
    .split("\n");
  return Array.from({ length: n }, (_, k) => {
    const file = join(dir, `client-${k}.csv`);
    writeFileSync(file, `${rows.filter((_, i) => i % n === k).join("\n")}\n`);
    return file;
  });
}

/** Bytes of the files under `dir` (0 when there is none). */
function bytesUnder(dir) {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = statSync(path);
    total += stat.isDirectory() ? bytesUnder(path) : stat.size;
  }
  return total;
}

/** One federation of `n` clients; its per-round figures. */
async function federation(n, secure) {
  const server = await startServer();
  const body = {
    config: CONFIG,
    rounds: ROUNDS,
    clientsPerRound: n,
    inputShape: [64],
    numOutputs: 10,
    aggregation: { clipNorm: 10 },
    roundTimeoutSecs: 600,
  };
  if (secure) Object.assign(body, { secureAggregation: true, secureThreshold: Math.max(2, Math.floor(n / 2) + 1) });
  const fed = await json(`${server.url}/v1/federations`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const files = shares(n, temp("kiln-fedbench-data-"));
  const cpuBefore = cpuSeconds(server.child.pid);
  const clients = files.map((file) => {
    const child = spawn(kiln, ["federate", "join", server.url, "--federation", fed.id, "--data", file], {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.add(child);
    let err = "";
    child.stderr.on("data", (d) => {
      err += d;
    });
    return new Promise((resolve) => child.on("exit", (code) => resolve({ code, err })));
  });
  const failed = (await Promise.all(clients)).find((c) => c.code !== 0);
  if (failed) throw new Error(`a client failed (exit ${failed.code}): ${failed.err.slice(-400)}`);
  const view = await json(`${server.url}/v1/federations/${fed.id}`);
  const cpu = cpuSeconds(server.child.pid) - cpuBefore;
  const closed = view.history.map((r) => r.closedAt);
  const roundMs = median(closed.slice(1).map((t, i) => t - closed[i]));
  // One client's round 1 as stored: its update (and secure messages), and the model it fetched.
  const folder = join(server.dataDir, "federations", fed.id, "round-1");
  const participant = readdirSync(folder).find((f) => f.endsWith(".kiln"));
  const update = statSync(join(folder, participant)).size;
  const who = participant.replace(/\.kiln$/, ".json");
  const sent = ["keys", "shares", "reveals"].reduce((sum, kind) => {
    const path = join(folder, "secure-0", kind, who);
    return sum + (existsSync(path) ? statSync(path).size : 0);
  }, update);
  const model = statSync(join(server.dataDir, "federations", fed.id, "global-1.kiln")).size;
  const inbox = secure ? Math.round(bytesUnder(join(folder, "secure-0", "shares")) / n) : 0;
  server.child.kill("SIGKILL");
  return { roundMs, cpuPerRound: cpu / ROUNDS, sent, received: model + inbox };
}

console.log(
  `kiln federated rounds on loopback: ${ROUNDS} rounds per run, MLP 64→8→10, one local epoch on 1/N of the digits`,
);
console.log(
  "| clients | aggregation | round (median, ms) | server CPU per round (s) | sent per client per round | received per client per round |",
);
console.log("|---:|---|---:|---:|---:|---:|");
for (const n of CLIENTS) {
  for (const secure of n >= 2 ? [false, true] : [false]) {
    const r = await federation(n, secure);
    const kb = (b) => `${(b / 1024).toFixed(1)} KB`;
    console.log(
      `| ${n} | ${secure ? "secure (FedAvg)" : "FedAvg"} | ${r.roundMs} | ${r.cpuPerRound.toFixed(3)} | ${kb(r.sent)} | ${kb(r.received)} |`,
    );
  }
}
