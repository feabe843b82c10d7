// Real servers for the fleet tests, started on loopback and free ports and stopped afterwards:
// a throwaway PostgreSQL cluster (Debian's binaries, in a temporary directory), moto's
// S3-compatible server (PyPI, in .venv-fleet; see scripts/setup-fleet.sh) and an MLflow
// tracking server (PyPI, in .venv-mlflow; see scripts/setup-mlflow.sh).
import { spawn, execFileSync } from "node:child_process";
import { chownSync, mkdtempSync, readdirSync, existsSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repo } from "../js/helpers.mjs";

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = new Set();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

function pgBin(name) {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const path = join(root, v, "bin", name);
    if (existsSync(path)) return path;
  }
  throw new Error(`PostgreSQL's ${name} is not installed (run scripts/setup-fleet.sh)`);
}

/**
 * PostgreSQL refuses to run as root: as root, its programs run as the `postgres` user (spawned
 * with that uid directly, so that signals reach the server itself, not a wrapper).
 */
function asPostgres() {
  if (process.getuid?.() !== 0) return {};
  const id = (flag) => Number(execFileSync("id", [flag, "postgres"]).toString());
  return { uid: id("-u"), gid: id("-g") };
}

/**
 * A new PostgreSQL cluster in a temporary directory, on a free loopback port, with databases
 * `names`; `restart()` stops it (fast shutdown) and starts it again on the same port and data.
 */
export async function startPostgres(names = ["kiln"]) {
  const dir = mkdtempSync(join(tmpdir(), "kiln-pg-"));
  const user = asPostgres();
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  execFileSync(pgBin("initdb"), ["-D", data, "-U", "kiln", "--auth=trust", "-E", "UTF8", "--no-sync"], {
    stdio: "ignore",
    ...user,
  });
  const port = await freePort();
  const pg = { port, dir, child: null, log: "" };
  pg.start = async () => {
    const child = spawn(
      pgBin("postgres"),
      [
        "-D",
        data,
        "-p",
        String(port),
        "-k",
        dir,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=200",
      ],
      { stdio: ["ignore", "ignore", "pipe"], ...user },
    );
    children.add(child);
    child.stderr.on("data", (d) => {
      pg.log += d;
    });
    pg.exited = new Promise((resolve) =>
      child.on("exit", () => {
        children.delete(child);
        resolve();
      }),
    );
    pg.child = child;
    const deadline = Date.now() + 30000;
    for (;;) {
      try {
        execFileSync(pgBin("pg_isready"), ["-h", "127.0.0.1", "-p", String(port), "-q"]);
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`PostgreSQL did not start: ${pg.log}`);
        await sleep(100);
      }
    }
  };
  pg.stop = async () => {
    if (!pg.child) return;
    pg.child.kill("SIGINT"); // fast shutdown: disconnects every client
    await pg.exited;
    pg.child = null;
  };
  pg.restart = async () => {
    await pg.stop();
    await pg.start();
  };
  await pg.start();
  for (const name of names) {
    execFileSync(pgBin("createdb"), ["-h", "127.0.0.1", "-p", String(port), "-U", "kiln", name]);
  }
  pg.url = (name = names[0]) => `postgres://kiln@127.0.0.1:${port}/${name}`;
  return pg;
}

/** moto's S3 server on a free loopback port, with bucket `bucket`; `env` is what a worker needs. */
export async function startMoto(bucket = "kiln-fleet") {
  const port = await freePort();
  const child = spawn(join(repo, ".venv-fleet", "bin", "moto_server"), ["-H", "127.0.0.1", "-p", String(port)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(child);
  const moto = { port, child, log: "" };
  child.stderr.on("data", (d) => {
    moto.log += d;
  });
  moto.exited = new Promise((resolve) =>
    child.on("exit", () => {
      children.delete(child);
      resolve();
    }),
  );
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      const r = await fetch(`${endpoint}/${bucket}`, { method: "PUT" });
      if (r.ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`moto did not start: ${moto.log}`);
    await sleep(200);
  }
  moto.endpoint = endpoint;
  moto.env = {
    AWS_ACCESS_KEY_ID: "kiln-test",
    AWS_SECRET_ACCESS_KEY: "kiln-test",
    AWS_REGION: "us-east-1",
    AWS_ENDPOINT_URL: endpoint,
  };
  /**
   * Runs `lines` of Python with boto3 (moto's own dependency) and `s3`, a client of this server
   * signed as any client's would be; sys.argv[1] is the bucket, then `args`.
   */
  const boto = (lines, args, options = {}) =>
    execFileSync(
      join(repo, ".venv-fleet", "bin", "python"),
      [
        "-c",
        ["import sys, boto3, botocore", `s3 = boto3.client('s3', endpoint_url='${endpoint}')`, ...lines].join("\n"),
        bucket,
        ...args,
      ],
      { env: { ...process.env, ...moto.env }, maxBuffer: 1 << 28, stdio: ["pipe", "pipe", "pipe"], ...options },
    );
  /** An object's bytes, or null. */
  moto.get = async (key) => {
    try {
      return boto(
        [
          "try:",
          "    sys.stdout.buffer.write(s3.get_object(Bucket=sys.argv[1], Key=sys.argv[2])['Body'].read())",
          "except botocore.exceptions.ClientError as e:",
          "    sys.exit(3 if e.response['Error']['Code'] in ('NoSuchKey', '404') else 1)",
        ],
        [key],
      );
    } catch (e) {
      if (e.status === 3) return null;
      throw new Error(`cannot read s3://${bucket}/${key}: ${e.stderr}`);
    }
  };
  /** Stores `body` (a string) at `key`. */
  moto.put = async (key, body) => {
    boto(["s3.put_object(Bucket=sys.argv[1], Key=sys.argv[2], Body=sys.stdin.buffer.read())"], [key], { input: body });
  };
  /** The keys under `prefix`, sorted. */
  moto.list = async (prefix) => {
    const out = boto(
      [
        "pages = s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[1], Prefix=sys.argv[2])",
        "print('\\n'.join(sorted(o['Key'] for p in pages for o in p.get('Contents', []))))",
      ],
      [prefix],
    )
      .toString()
      .trim();
    return out ? out.split("\n") : [];
  };
  moto.stop = async () => {
    child.kill("SIGTERM");
    await moto.exited;
  };
  return moto;
}

/**
 * A throwaway MLflow tracking server (PyPI, in .venv-mlflow; see scripts/setup-mlflow.sh) on a
 * free loopback port, SQLite backend store in a temporary directory. `api(path, body?)` calls
 * its REST API (GET with a query object, or POST with a JSON body); `stop()` kills its process
 * group (the server and its workers).
 */
export async function startMlflow({ artifactRoot } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "kiln-mlflow-"));
  const port = await freePort();
  // Artifacts behind the server's proxy (MLflow's default), or, given `artifactRoot`
  // (`s3://…`), in a bucket that clients write to themselves.
  const artifacts = artifactRoot
    ? ["--default-artifact-root", artifactRoot, "--no-serve-artifacts"]
    : ["--artifacts-destination", join(dir, "artifacts")];
  const child = spawn(
    join(repo, ".venv-mlflow", "bin", "mlflow"),
    [
      "server",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--workers",
      "1",
      "--backend-store-uri",
      `sqlite:///${join(dir, "mlflow.db")}`,
      ...artifacts,
    ],
    { cwd: dir, detached: true, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, MLFLOW_TRACKING_URI: "" } },
  );
  const group = {
    kill: () => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    },
  };
  children.add(group);
  const mlflow = { port, dir, log: "", url: `http://127.0.0.1:${port}` };
  child.stderr.on("data", (d) => {
    mlflow.log += d;
  });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const deadline = Date.now() + 120000;
  for (;;) {
    try {
      if ((await fetch(`${mlflow.url}/health`)).ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      group.kill();
      throw new Error(`MLflow did not start: ${mlflow.log}`);
    }
    await sleep(300);
  }
  mlflow.api = async (path, { query, body } = {}) => {
    const url = new URL(`${mlflow.url}/api/2.0/mlflow/${path}`);
    for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
    const r = await fetch(
      url,
      body ? { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : {},
    );
    const json = await r.json();
    if (!r.ok) throw new Error(`MLflow ${path}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  };
  /** A metric's history in a run, as [step, value] sorted by step (ties kept). */
  mlflow.history = async (runId, key) => {
    const { metrics = [] } = await mlflow.api("metrics/get-history", {
      query: { run_id: runId, metric_key: key, max_results: "25000" },
    });
    return metrics.map((m) => [Number(m.step), m.value]).sort((x, y) => x[0] - y[0]);
  };
  mlflow.stop = async () => {
    group.kill();
    children.delete(group);
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  return mlflow;
}

/**
 * A TCP relay on a free loopback port to `targetPort`: a network path that a test can cut.
 * `down()` resets every connection through it and refuses new ones until `up()`; `close()`
 * stops it.
 */
export async function startRelay(targetPort) {
  const sockets = new Set();
  let cut = false;
  const track = (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };
  const server = createServer((client) => {
    track(client);
    if (cut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const relay = { endpoint: `http://127.0.0.1:${server.address().port}`, connections: 0 };
  server.on("connection", () => {
    relay.connections += 1;
  });
  relay.down = () => {
    cut = true;
    for (const s of sockets) s.resetAndDestroy();
  };
  relay.up = () => {
    cut = false;
  };
  relay.close = () =>
    new Promise((resolve) => {
      relay.down();
      server.close(() => resolve());
    });
  return relay;
}
