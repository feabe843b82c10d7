// A fleet of `kiln serve` workers on one real PostgreSQL (a throwaway cluster started here) and
// one object store (moto's S3 server, and file://): every job exactly once across workers,
// events followed from any server, label routing, kill -9 fail-over with identical weights, a
// restarted worker rejoining, drain, PostgreSQL restarted under load, the object store failing
// during checkpoints (file://, and S3 cut off behind a relay), workers judged lost by their own
// leases, a tracked job's MLflow run carried on by the worker that takes it over, and MLflow
// artifacts written to an S3 artifact root.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, renameSync, writeFileSync, rmSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { spawn } from "node:child_process";
import {
  tempDir,
  startServer,
  stopServer,
  killServers,
  installPackage,
  packageEntryUrl,
  kilnBin,
} from "../js/helpers.mjs";
import { api, waitFor, readEvents, twoClassCsv, DETERMINISTIC, burnpackTensorData } from "../js/server-api.mjs";
import { startPostgres, startMoto, startMlflow, startRelay, freePort } from "./services.mjs";

let pg;
let moto;
const DATABASES = [
  "scale",
  "failover",
  "pgrestart",
  "once",
  "files",
  "s3outage",
  "leases",
  "tracked",
  "s3artifacts",
  "federation",
];

before(async () => {
  pg = await startPostgres(DATABASES);
  moto = await startMoto("kiln-fleet");
});

after(async () => {
  killServers();
  await pg?.stop();
  await moto?.stop();
  if (pg) rmSync(pg.dir, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const FAST = { training: { num_passes: 2, batch_size: 32 } };

/** Workers on database `db` and object store `objects`. */
function worker(db, objects, { lease = 6, labels = [], dataDir, extra = [], env = moto.env, addr } = {}) {
  const args = ["--database", pg.url(db), "--objects", objects, "--lease-secs", String(lease), ...extra];
  for (const l of labels) args.push("--label", l);
  return startServer(args, dataDir ?? tempDir("kiln-worker-"), env, addr);
}

/**
 * Checks a finished job's event history: exactly one final status; the lease attempts that
 * wrote events only ever increase (a later claim never interleaves with an earlier one), one
 * `assigned` event per attempt, and within an attempt training steps strictly increase.
 */
function assertRanOnceAtATime(events, id) {
  const finals = events.filter(
    (e) => e.event === "status" && ["completed", "failed", "cancelled"].includes(e.data.status),
  );
  assert.equal(finals.length, 1, `${id}: ${finals.length} final status events`);
  const seqs = events.map((e) => e.id);
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => i + 1),
    `${id}: event ids are not 1..n`,
  );
  let attempt = 0;
  let lastStep = -1;
  const assigned = events.filter((e) => e.event === "assigned").map((e) => e.data.attempt);
  for (const e of events) {
    if (e.event === "assigned") {
      assert.ok(e.data.attempt > attempt, `${id}: attempt ${e.data.attempt} after ${attempt}`);
      attempt = e.data.attempt;
      lastStep = -1;
    }
    if (e.event === "progress" && typeof e.data.step === "number") {
      assert.ok(e.data.step > lastStep, `${id}: step ${e.data.step} after ${lastStep} in attempt ${attempt}`);
      lastStep = e.data.step;
    }
  }
  return assigned;
}

test("three workers on one PostgreSQL and S3: 12 jobs each run once, events and models from any server, labels route jobs", async () => {
  const objects = "s3://kiln-fleet/scale";
  const servers = [
    await worker("scale", objects),
    await worker("scale", objects),
    await worker("scale", objects, { labels: ["gpu=h200"] }),
  ];
  const [a, b, gpu] = servers;

  const listed = (await api(b, "/v1/workers")).json;
  assert.equal(listed.length, 3);
  const gpuView = listed.find((w) => w.id === gpu.worker);
  assert.deepEqual(gpuView.labels, { backend: "cpu", gpu: "h200" });
  assert.equal(gpuView.state, "running");
  assert.ok(Date.now() - gpuView.lastHeartbeat < 10000);

  // A dataset uploaded through one server trains on whichever worker claims the job.
  const up = await api(a, "/v1/datasets?label_column=label&header=true", {
    method: "POST",
    body: twoClassCsv(200),
    type: "text/csv",
  });
  assert.equal(up.status, 201, up.text);
  const ids = [];
  for (let i = 0; i < 12; i++) {
    const body =
      i % 3 === 0
        ? { config: { ...FAST, name: `csv-${i}` }, dataset: up.json.id }
        : { config: { ...FAST, name: `digits-${i}` } };
    const r = await api(servers[i % 3], "/v1/jobs", { method: "POST", body });
    assert.equal(r.status, 202, r.text);
    ids.push(r.json.id);
  }
  const done = [];
  for (const id of ids) done.push(await waitFor(servers[(ids.indexOf(id) + 1) % 3], id, { timeout: 300000 }));
  for (const job of done) assert.equal(job.status, "completed", JSON.stringify(job));
  const ranOn = new Set(done.map((j) => j.workerId));
  assert.ok(ranOn.size >= 2, `all 12 jobs ran on ${[...ranOn]}`);
  for (const job of done) {
    // Followed from a server that did not run it: the history is in PostgreSQL.
    const other = servers.find((s) => s.worker !== job.workerId);
    const events = await readEvents(other, job.id);
    assert.deepEqual(assertRanOnceAtATime(events, job.id), [1]);
    assert.equal(events.find((e) => e.event === "assigned").data.worker, job.workerId);
    // Its model is in the shared store: any server serves it.
    const model = await fetch(`${other.url}/v1/models/${job.result.modelId}`);
    assert.equal(model.status, 200);
    assert.ok((await model.arrayBuffer()).byteLength > 1000);
    const metrics = (await api(other, `/v1/jobs/${job.id}/metrics`)).json;
    assert.ok(metrics.length > 0, "metrics.jsonl did not reach the object store");
  }
  assert.ok(await moto.get(`scale/models/${done[0].result.modelId}.kiln`), "the model is not in the S3 bucket");

  // Live events from another server: LISTEN/NOTIFY forwards them as they happen.
  const live = await api(a, "/v1/jobs", {
    method: "POST",
    body: { config: { training: { num_passes: 4, batch_size: 32 } }, resources: { labels: { gpu: "h200" } } },
  });
  const followed = await readEvents(b, live.json.id);
  assert.equal(followed.at(-1).data.status, "completed");
  assert.ok(followed.filter((e) => e.event === "progress").length >= 4);
  const routed = await waitFor(a, live.json.id);
  assert.equal(routed.workerId, gpu.worker, "a job requiring gpu=h200 ran on a worker without it");

  // The config's resources.labels route too; a label no worker has keeps the job queued.
  const viaConfig = await api(b, "/v1/jobs", {
    method: "POST",
    body: { config: { ...FAST, resources: { labels: { gpu: "h200" } } } },
  });
  assert.equal((await waitFor(b, viaConfig.json.id)).workerId, gpu.worker);
  const nowhere = await api(b, "/v1/jobs", {
    method: "POST",
    body: { config: FAST, resources: { labels: { gpu: "a100" } } },
  });
  assert.deepEqual(nowhere.json.requires, { gpu: "a100" });
  await sleep(3000);
  assert.equal((await api(a, `/v1/jobs/${nowhere.json.id}`)).json.status, "queued");
  assert.equal((await api(gpu, `/v1/jobs/${nowhere.json.id}/cancel`, { method: "POST" })).status, 202);
  assert.equal((await waitFor(a, nowhere.json.id)).status, "cancelled");
  const bad = await api(a, "/v1/jobs", {
    method: "POST",
    body: { config: FAST, resources: { labels: { "a b": "x" } } },
  });
  assert.equal(bad.status, 400);
  assert.match(bad.json.detail, /resources\.labels/);

  for (const s of servers) assert.equal((await stopServer(s)).code, 0);
});

test("kill -9 a worker mid-job: another takes it over from its checkpoint in S3 with the uninterrupted run's weights; the killed one rejoins; drain", async () => {
  const objects = "s3://kiln-fleet/failover";
  const dirA = tempDir("kiln-worker-a-");
  const a = await worker("failover", objects, { lease: 4, dataDir: dirA });
  const b = await worker("failover", objects, { lease: 4 });
  const straight = await api(a, "/v1/jobs", { method: "POST", body: { config: DETERMINISTIC } });
  const reference = await waitFor(a, straight.json.id, { timeout: 300000 });
  assert.equal(reference.status, "completed");

  const job = await api(b, "/v1/jobs", { method: "POST", body: { config: DETERMINISTIC } });
  const id = job.json.id;
  await readEvents(a, id, { until: (e) => e.event === "checkpoint" && e.data.epoch >= 3 });
  let row = (await api(a, `/v1/jobs/${id}`)).json;
  const victim = [a, b].find((s) => s.worker === row.workerId);
  const survivor = victim === a ? b : a;
  await sleep(300); // the checkpoint's record follows its event
  row = (await api(survivor, `/v1/jobs/${id}`)).json;
  assert.ok(row.checkpoint?.epoch >= 3, JSON.stringify(row));
  const killedAt = Date.now();
  await stopServer(victim, "SIGKILL");
  // Fail-over time: from the kill to the job's first training step on the survivor.
  let takenOver = false;
  await readEvents(survivor, id, {
    until: (e) => {
      if (e.event === "assigned" && e.data.attempt === 2) takenOver = true;
      return takenOver && e.event === "progress";
    },
  });
  console.log(`# fail-over: ${Date.now() - killedAt} ms from kill -9 to the next step on another worker (lease 4 s)`);
  const done = await waitFor(survivor, id, { timeout: 300000 });
  assert.equal(done.status, "completed", JSON.stringify(done));
  assert.equal(done.workerId, survivor.worker);
  assert.equal(done.attempt, 2);
  const all = await readEvents(survivor, id);
  assert.deepEqual(assertRanOnceAtATime(all, id), [1, 2]);
  const handover = all.find((e) => e.event === "assigned" && e.data.attempt === 2);
  assert.equal(handover.data.worker, survivor.worker);
  assert.equal(handover.data.previousWorker, victim.worker);
  assert.ok(handover.data.resumeFrom.epoch >= 3, JSON.stringify(handover.data));
  const restart = all.find((e) => e.event === "started" && e.id > handover.id);
  assert.ok(restart.data.start_epoch > 1, `resumed at ${JSON.stringify(restart.data)}`);
  const weightsA = burnpackTensorData(await moto.get(`failover/jobs/${straight.json.id}/final_weights.bpk`));
  const weightsB = burnpackTensorData(await moto.get(`failover/jobs/${id}/final_weights.bpk`));
  assert.ok(weightsA.length > 1000 && weightsA.equals(weightsB), "final weights differ from the uninterrupted run");
  assert.deepEqual(done.result.finalMetrics, reference.result.finalMetrics);
  // The new holder's checkpoints are its own (kept per attempt), the recorded one is in S3.
  assert.equal(done.checkpoint.attempt, 2);
  const lastState = `failover/jobs/${id}/checkpoints/attempt-2/epoch-${String(done.checkpoint.epoch).padStart(4, "0")}/state.json`;
  assert.equal(JSON.parse((await moto.get(lastState)).toString()).epochs_done, done.checkpoint.epoch);

  // The killed worker restarts with its data dir and rejoins as itself.
  const restarted = await worker("failover", objects, { lease: 4, dataDir: victim.dataDir });
  assert.equal(restarted.worker, victim.worker);
  let workers = (await api(survivor, "/v1/workers")).json;
  assert.equal(workers.length, 2);
  assert.equal(workers.find((w) => w.id === restarted.worker).state, "running");

  // Drain the survivor while it trains: it finishes that job, takes no new one; the rejoined
  // worker runs the next.
  const long = await api(survivor, "/v1/jobs", {
    method: "POST",
    body: { config: { ...FAST, training: { num_passes: 6, batch_size: 16 } } },
  });
  await readEvents(survivor, long.json.id, { until: (e) => e.event === "started" });
  const running = (await api(survivor, `/v1/jobs/${long.json.id}`)).json;
  const drained = [survivor, restarted].find((s) => s.worker === running.workerId);
  const other = drained === survivor ? restarted : survivor;
  assert.equal((await api(other, `/v1/workers/${drained.worker}/drain`, { method: "POST" })).status, 202);
  assert.equal(
    (await api(other, "/v1/workers/worker-00000000-0000-4000-8000-000000000000/drain", { method: "POST" })).status,
    404,
  );
  const next = await api(drained, "/v1/jobs", { method: "POST", body: { config: FAST } });
  const finished = await waitFor(other, long.json.id);
  assert.equal(finished.status, "completed");
  assert.equal(finished.workerId, drained.worker, "the draining worker did not finish its own job");
  assert.equal((await waitFor(other, next.json.id)).workerId, other.worker, "a draining worker took a new job");
  workers = (await api(other, "/v1/workers")).json;
  assert.equal(workers.find((w) => w.id === drained.worker).state, "draining");

  // SIGTERM hands a running job over at its epoch end: the other worker resumes it at once.
  const handed = await api(other, "/v1/jobs", {
    method: "POST",
    body: {
      config: {
        ...DETERMINISTIC,
        training: { num_passes: 40, batch_size: 16 },
        checkpoint: { every_epochs: 1000, save_top_k: 1 },
      },
    },
  });
  await readEvents(other, handed.json.id, { until: (e) => e.event === "evaluated" && e.data.epoch >= 2 });
  const holder = (await api(other, `/v1/jobs/${handed.json.id}`)).json.workerId;
  assert.equal(holder, other.worker);
  await api(other, `/v1/workers/${drained.worker}/drain`, { method: "POST" }); // already draining: idempotent
  // Undrain the drained worker by restarting it, then stop the holder.
  await stopServer(drained);
  const back = await worker("failover", objects, { lease: 4, dataDir: drained.dataDir });
  assert.equal((await stopServer(other, "SIGTERM")).code, 0);
  const resumed = await waitFor(back, handed.json.id, { timeout: 300000 });
  assert.equal(resumed.status, "completed", JSON.stringify(resumed));
  assert.equal(resumed.workerId, back.worker);
  const handedEvents = await readEvents(back, handed.json.id);
  assert.ok(
    handedEvents.some(
      (e) => e.event === "interrupted" && /the server is stopping \(worker [^)]+\)/.test(e.data.reason),
    ),
  );
  assert.ok(
    handedEvents.some((e) => e.event === "started" && e.data.start_epoch > 1),
    "the handed-over job started again from scratch",
  );
  assertRanOnceAtATime(handedEvents, handed.json.id);
  assert.equal((await stopServer(back)).code, 0);
});

test("PostgreSQL restarted while jobs train: workers reconnect and carry on; no job lost or run twice", async () => {
  const objects = "s3://kiln-fleet/pgrestart";
  const servers = [
    await worker("pgrestart", objects, { lease: 20 }),
    await worker("pgrestart", objects, { lease: 20 }),
  ];
  const ids = [];
  for (let i = 0; i < 4; i++) {
    const r = await api(servers[i % 2], "/v1/jobs", {
      method: "POST",
      body: { config: { training: { num_passes: 5, batch_size: 16 } } },
    });
    ids.push(r.json.id);
  }
  await readEvents(servers[0], ids[0], { until: (e) => e.event === "progress" });
  await pg.restart();
  for (const id of ids) {
    const done = await waitFor(servers[1], id, { timeout: 300000 });
    assert.equal(done.status, "completed", JSON.stringify(done));
    const events = await readEvents(servers[0], id);
    assert.deepEqual(assertRanOnceAtATime(events, id), [1], `${id} was claimed more than once`);
  }
  // Both still work after the restart.
  for (const s of servers) {
    const r = await api(s, "/v1/jobs", { method: "POST", body: { config: FAST } });
    assert.equal((await waitFor(s, r.json.id)).status, "completed");
    assert.equal((await stopServer(s)).code, 0);
  }
});

test("exactly once through a kill -9 and a 20 s database outage: 6 jobs, one final status each, 6 models, none without a job", async () => {
  const objects = "s3://kiln-fleet/once";
  const a = await worker("once", objects, { lease: 5 });
  const b = await worker("once", objects, { lease: 5 });
  const ids = [];
  for (let i = 0; i < 6; i++) {
    const config = { training: { num_passes: 4 + i, batch_size: 16 }, checkpoint: { every_epochs: 1, save_top_k: 1 } };
    ids.push((await api([a, b][i % 2], "/v1/jobs", { method: "POST", body: { config } })).json.id);
  }
  // Both workers train; one is killed, then the database goes away for 20 s (four leases):
  // jobs finish while it is away, and their leases lapse before their end can be recorded.
  await readEvents(a, ids[0], { until: (e) => e.event === "progress" });
  await readEvents(a, ids[1], { until: (e) => e.event === "progress" });
  await stopServer(a, "SIGKILL");
  const survivor = b;
  await pg.stop();
  await sleep(20000);
  await pg.start();

  const models = [];
  for (const id of ids) {
    const done = await waitFor(survivor, id, { timeout: 300000 });
    assert.equal(done.status, "completed", JSON.stringify(done));
    const attempts = assertRanOnceAtATime(await readEvents(survivor, id), id);
    console.log(`${id}: attempts ${attempts.join(",")}`);
    models.push(done.result.modelId);
  }
  // Give any re-claim a lease and a half to happen (it must not), then count the models.
  await sleep(7500);
  assert.deepEqual(
    (await api(survivor, "/v1/jobs?limit=1000")).json.filter((j) => ids.includes(j.id)).map((j) => j.status),
    ids.map(() => "completed"),
  );
  const stored = (await moto.list("once/models/")).map((k) => k.replace(/^once\/models\//, "").replace(/\.kiln$/, ""));
  assert.deepEqual(
    stored.sort(),
    [...models].sort(),
    "the object store holds models no job owns, or one job's model twice",
  );
  // The outage is said once (when it began and when it ended), not once per retry.
  const said = survivor.log.split("\n").filter((l) => /lease is held by another worker/.test(l)).length;
  assert.ok(said <= 2, `${said} lines about leases held by another worker:\n${survivor.log.slice(-3000)}`);
  assert.equal((await stopServer(survivor)).code, 0);
});

test("file:// object store unreachable during a checkpoint: the job reports it, records no missing checkpoint, retries and completes", async () => {
  const shared = join(tempDir("kiln-objects-"), "store");
  mkdirSync(shared);
  const s = await worker("files", `file://${shared}`, { lease: 20 });
  const job = await api(s, "/v1/jobs", {
    method: "POST",
    body: {
      config: { ...FAST, training: { num_passes: 40, batch_size: 16 }, checkpoint: { every_epochs: 1, save_top_k: 1 } },
    },
  });
  const id = job.json.id;
  // Checkpoints are kept per lease attempt: jobs/<id>/checkpoints/attempt-<n>/epoch-<e>/.
  const stateOf = ({ attempt, epoch }) =>
    join(
      shared,
      "jobs",
      id,
      "checkpoints",
      `attempt-${attempt}`,
      `epoch-${String(epoch).padStart(4, "0")}`,
      "state.json",
    );
  let row;
  for (;;) {
    row = (await api(s, `/v1/jobs/${id}`)).json;
    if (row.checkpoint?.epoch >= 1) break;
    await sleep(100);
  }
  assert.ok(existsSync(stateOf(row.checkpoint)));
  // The store goes away: its directory is replaced by a file.
  renameSync(shared, `${shared}.away`);
  writeFileSync(shared, "not a directory");
  const failed = await readEvents(s, id, { until: (e) => e.event === "checkpointFailed" });
  const failure = failed.at(-1);
  assert.equal(failure.event, "checkpointFailed");
  assert.match(failure.data.error, /object store: cannot write/);
  const during = (await api(s, `/v1/jobs/${id}`)).json;
  assert.ok(during.checkpoint.epoch < failure.data.epoch, "a checkpoint that failed was recorded");
  assert.ok(
    existsSync(stateOf(during.checkpoint).replace(shared, `${shared}.away`)),
    "the recorded checkpoint is not in the store",
  );
  rmSync(shared);
  renameSync(`${shared}.away`, shared);
  const done = await waitFor(s, id, { timeout: 300000 });
  assert.equal(done.status, "completed", JSON.stringify(done));
  assert.ok(done.checkpoint.epoch > failure.data.epoch, "no checkpoint was recorded after the store came back");
  assert.ok(existsSync(stateOf(done.checkpoint)));
  assert.ok(existsSync(join(shared, "jobs", id, "run.json")));
  assert.ok(JSON.parse(readFileSync(join(shared, "jobs", id, "run.json"), "utf8")).modelId);
  assert.ok(existsSync(join(shared, "models", `${done.result.modelId}.kiln`)));
  assert.equal((await stopServer(s)).code, 0);
});

test("S3 unreachable during a checkpoint: the job reports it, records no checkpoint that is not in S3, retries, completes, and leaves only the recorded checkpoint in S3", async () => {
  // The worker reaches moto only through a relay that the test cuts: every connection reset,
  // new ones refused, while moto itself (and what it holds) stays up.
  const relay = await startRelay(moto.port);
  try {
    const s = await worker("s3outage", "s3://kiln-fleet/outage", {
      lease: 20,
      env: { ...moto.env, AWS_ENDPOINT_URL: relay.endpoint },
    });
    // What a worker that lost this job could have left: an upload it never recorded.
    const id = `trainingjob-${randomUUID()}`;
    const stray = `outage/jobs/${id}/checkpoints/attempt-1/epoch-0999/model.bpk`;
    await moto.put(stray, "left by a worker that lost the job");
    const job = await api(s, "/v1/jobs", {
      method: "POST",
      body: {
        id,
        config: {
          ...FAST,
          training: { num_passes: 40, batch_size: 16 },
          checkpoint: { every_epochs: 1, save_top_k: 1 },
        },
      },
    });
    assert.equal(job.status, 202, JSON.stringify(job.json));
    const stateKey = ({ attempt, epoch }) =>
      `outage/jobs/${id}/checkpoints/attempt-${attempt}/epoch-${String(epoch).padStart(4, "0")}/state.json`;
    let row;
    for (;;) {
      row = (await api(s, `/v1/jobs/${id}`)).json;
      if (row.checkpoint?.epoch >= 1) break;
      await sleep(100);
    }
    assert.ok(await moto.get(stateKey(row.checkpoint)), "the first recorded checkpoint is not in S3");
    assert.ok(relay.connections > 0, "the worker did not reach S3 through the relay");
    relay.down();
    const failed = await readEvents(s, id, { until: (e) => e.event === "checkpointFailed" });
    const failure = failed.at(-1);
    assert.equal(failure.event, "checkpointFailed");
    assert.ok(failure.data.error.startsWith(`object store: cannot write jobs/${id}/`), failure.data.error);
    assert.match(failure.data.error, /after 3 retries/);
    const during = (await api(s, `/v1/jobs/${id}`)).json;
    assert.ok(during.checkpoint.epoch < failure.data.epoch, "a checkpoint that failed was recorded");
    assert.equal(failure.data.recordedEpoch, during.checkpoint.epoch);
    assert.equal(
      JSON.parse((await moto.get(stateKey(during.checkpoint))).toString()).epochs_done,
      during.checkpoint.epoch,
      "the recorded checkpoint is not in S3",
    );
    assert.equal(
      await moto.get(stateKey({ attempt: during.checkpoint.attempt, epoch: failure.data.epoch })),
      null,
      "the failed checkpoint is in S3 after all",
    );
    relay.up();
    const done = await waitFor(s, id, { timeout: 300000 });
    assert.equal(done.status, "completed", JSON.stringify(done));
    assert.ok(done.checkpoint.epoch > failure.data.epoch, "no checkpoint was recorded after S3 came back");
    assert.equal(JSON.parse((await moto.get(stateKey(done.checkpoint))).toString()).epochs_done, done.checkpoint.epoch);
    // Only the recorded checkpoint is left in S3: earlier ones and the stray upload are gone.
    const folder = stateKey(done.checkpoint).replace(/state\.json$/, "");
    const left = await moto.list(`outage/jobs/${id}/checkpoints/`);
    assert.ok(left.length >= 2 && left.every((key) => key.startsWith(folder)), left.join("\n"));
    assert.equal(await moto.get(stray), null);
    const run = JSON.parse((await moto.get(`outage/jobs/${id}/run.json`)).toString());
    assert.equal(run.modelId, done.result.modelId);
    assert.ok((await moto.get(`outage/models/${done.result.modelId}.kiln`))?.length > 100, "the model is not in S3");
    assert.equal((await stopServer(s)).code, 0);
  } finally {
    await relay.close();
  }
});

test("a worker is judged lost by its own lease, whichever server answers", async () => {
  const short = await worker("leases", "s3://kiln-fleet/leases", { lease: 2 });
  const long = await worker("leases", "s3://kiln-fleet/leases", { lease: 60 });
  const stateOf = async (id) => (await api(long, "/v1/workers")).json.find((w) => w.id === id)?.state;
  assert.equal(await stateOf(short.worker), "running");
  assert.equal(await stateOf(long.worker), "running");
  await stopServer(short, "SIGKILL");
  // Lost once 2 s pass without a heartbeat: the answering server's own 60 s lease does not count.
  const deadline = Date.now() + 15000;
  let state;
  while ((state = await stateOf(short.worker)) !== "lost" && Date.now() < deadline) await sleep(200);
  assert.equal(state, "lost");
  assert.equal(await stateOf(long.worker), "running");
  assert.equal((await stopServer(long)).code, 0);
});

test("kill -9 a tracked job's worker: the worker that takes it over logs into the same MLflow run, every step once", async () => {
  const mlflow = await startMlflow();
  try {
    const objects = "s3://kiln-fleet/tracked";
    const tracked = { lease: 6, extra: ["--mlflow", mlflow.url] };
    const a = await worker("tracked", objects, tracked);
    const b = await worker("tracked", objects, tracked);
    // The kill must come while MLflow has steps past the recorded checkpoint: from the first
    // send after a checkpoint is recorded (sends go every 2 s) until the next checkpoint is.
    // With small batches a checkpoint every 15 epochs leaves seconds for that (every 6 epochs,
    // ~2.3 s in a debug build here, had left ~0.3 s and the kill missed it).
    const config = {
      ...DETERMINISTIC,
      training: { num_passes: 45, batch_size: 4 },
      checkpoint: { every_epochs: 15, save_top_k: 1 },
      tracking: { mlflow: { experiment: "fleet-handover" } },
    };
    const id = (await api(a, "/v1/jobs", { method: "POST", body: { config } })).json.id;
    await readEvents(a, id, { until: (e) => e.event === "checkpoint" });
    const { experiment } = await mlflow.api("experiments/get-by-name", {
      query: { experiment_name: "fleet-handover" },
    });
    const runOf = async () =>
      (
        await mlflow.api("runs/search", {
          body: { experiment_ids: [experiment.experiment_id], filter: `tags."kiln.job_id" = '${id}'` },
        })
      ).runs ?? [];
    // Kill the holder once MLflow has steps after its recorded checkpoint (they are sent every
    // 2 s): the worker that takes over re-trains them.
    let before = [];
    const looks = [];
    const started = Date.now();
    for (const deadline = Date.now() + 120000; ; ) {
      const seen = () => JSON.stringify(looks);
      assert.ok(Date.now() < deadline, `MLflow never got a step after the recorded checkpoint: ${seen()}`);
      const job = (await api(a, `/v1/jobs/${id}`)).json;
      assert.notEqual(
        job.status,
        "completed",
        `the job ended before MLflow had a step past any of its checkpoints: ${seen()}`,
      );
      const recorded = job.checkpoint;
      const [run] = await runOf();
      if (run && recorded) before = await mlflow.history(run.info.run_id, "train_loss");
      // [ms since the first checkpoint event, the recorded checkpoint's step, MLflow's last step]
      looks.push([Date.now() - started, recorded?.step, run ? Math.max(-1, ...before.map(([step]) => step)) : null]);
      if (recorded && before.some(([step]) => step > recorded.step)) break;
      // Not faster: every look is two MLflow requests, which compete with the worker's sends.
      await sleep(500);
    }
    // The holder is read just before the kill: a lease that lapsed earlier (a loaded machine)
    // may have moved the job already; the hand-over checked is the one the kill causes.
    const held = (await api(a, `/v1/jobs/${id}`)).json;
    const victim = [a, b].find((s) => s.worker === held.workerId);
    const survivor = victim === a ? b : a;
    await stopServer(victim, "SIGKILL");
    const done = await waitFor(survivor, id, { timeout: 300000 });
    assert.equal(done.status, "completed", JSON.stringify(done));
    assert.equal(done.attempt, held.attempt + 1, `taken over once after the kill (held: attempt ${held.attempt})`);

    const runs = await runOf();
    assert.equal(runs.length, 1, "one MLflow run for the job");
    const run = runs[0];
    assert.equal(run.info.status, "FINISHED");
    const history = await mlflow.history(run.info.run_id, "train_loss");
    const steps = history.map(([step]) => step);
    assert.deepEqual(steps, [...new Set(steps)], "a step logged twice");
    // MLflow holds the run's metrics.jsonl (the survivor's: the lines up to the checkpoint it
    // resumed from, stored with that checkpoint, then its own), every step once: those after the
    // checkpoint (the killed attempt had sent some of them, and the survivor re-trained them to
    // the same values), and those before it that the killed worker had not sent yet (kill -9),
    // which the survivor sends from that metrics.jsonl.
    const events = await readEvents(survivor, id);
    const resumedFrom = events.find((e) => e.event === "assigned" && e.data.attempt === done.attempt).data.resumeFrom
      .step;
    const jsonl = new Map();
    for (const line of (await api(survivor, `/v1/jobs/${id}/metrics`)).json) {
      if (line.event === "progress") jsonl.set(line.step, line.loss);
    }
    assert.deepEqual(
      steps,
      [...jsonl.keys()].sort((x, y) => x - y),
    );
    for (const [step, value] of history)
      assert.ok(Math.abs(value - jsonl.get(step)) < 1e-6, `step ${step}: ${value} vs ${jsonl.get(step)}`);
    // The registry's progress reports (both attempts) agree.
    for (const e of events) {
      if (e.event === "progress")
        assert.ok(Math.abs(e.data.loss - jsonl.get(e.data.step)) < 1e-6, `progress at step ${e.data.step}`);
    }
    assert.ok(
      before.some(([step]) => step > resumedFrom),
      `the killed attempt logged past its checkpoint (step ${resumedFrom})`,
    );
    // The model the survivor stored is the run's artifact.
    const artifacts = run.info.artifact_uri.replace(/^mlflow-artifacts:\/*/, "");
    const logged = await fetch(`${mlflow.url}/api/2.0/mlflow-artifacts/artifacts/${artifacts}/best_model.kiln`);
    assert.equal(logged.status, 200);
    const stored = await fetch(`${survivor.url}/v1/models/${done.result.modelId}`);
    assert.ok(
      Buffer.from(await logged.arrayBuffer()).equals(Buffer.from(await stored.arrayBuffer())),
      "best_model.kiln differs from the stored model",
    );
    await stopServer(survivor);
  } finally {
    await mlflow.stop();
  }
});

test("an MLflow server whose artifact root is an S3 bucket: the worker uploads the run's artifacts to it", async () => {
  const mlflow = await startMlflow({ artifactRoot: "s3://kiln-fleet/mlruns" });
  try {
    const s = await worker("s3artifacts", "s3://kiln-fleet/s3artifacts", { extra: ["--mlflow", mlflow.url] });
    const config = { ...FAST, tracking: { mlflow: { experiment: "s3-artifacts" } } };
    const id = (await api(s, "/v1/jobs", { method: "POST", body: { config } })).json.id;
    const done = await waitFor(s, id, { timeout: 300000 });
    assert.equal(done.status, "completed", JSON.stringify(done));
    const events = await readEvents(s, id);
    assert.deepEqual(
      events.filter((e) => e.event === "warning").map((e) => e.data.message),
      [],
      "the tracker reported something it could not send",
    );
    const { experiment } = await mlflow.api("experiments/get-by-name", { query: { experiment_name: "s3-artifacts" } });
    const { runs } = await mlflow.api("runs/search", {
      body: { experiment_ids: [experiment.experiment_id], filter: `tags."kiln.job_id" = '${id}'` },
    });
    assert.equal(runs.length, 1);
    const uri = runs[0].info.artifact_uri;
    assert.match(uri, /^s3:\/\/kiln-fleet\/mlruns\//);
    const prefix = uri.replace("s3://kiln-fleet/", "");
    const keys = (await moto.list(`${prefix}/`)).map((k) => k.slice(prefix.length + 1));
    for (const name of ["best_model.kiln", "run.json", "config.yaml", "holdout.csv"])
      assert.ok(keys.includes(name), `${name} not in ${keys}`);
    const stored = Buffer.from(await (await fetch(`${s.url}/v1/models/${done.result.modelId}`)).arrayBuffer());
    assert.ok(
      (await moto.get(`${prefix}/best_model.kiln`)).equals(stored),
      "best_model.kiln differs from the stored model",
    );
    assert.equal(JSON.parse((await moto.get(`${prefix}/run.json`)).toString()).modelId, done.result.modelId);
    assert.equal((await stopServer(s)).code, 0);
  } finally {
    await mlflow.stop();
  }
});

test("a secure federation on two servers (PostgreSQL, S3): clients on either, one server killed -9 and restarted; every round closed once", {
  timeout: 300_000,
}, async () => {
  await installPackage();
  const objects = "s3://kiln-fleet/federation";
  const addrB = `127.0.0.1:${await freePort()}`;
  const a = await worker("federation", objects);
  let b = await worker("federation", objects, { addr: addrB });
  const rows = twoClassCsv(180).trim().split("\n");
  const header = rows[0];
  const part = (k) => `${[header, ...rows.slice(1).filter((_, i) => i % 3 === k)].join("\n")}\n`;
  const config = {
    name: "fleet-federation",
    model: { hidden: [8] },
    training: {
      num_passes: 1,
      batch_size: 16,
      weight_optimization: { optimization_method: "sgd", learning_rate: 0.05 },
    },
    data: { header: true, split: [0.9, 0.1, 0.0] },
  };
  const created = await api(a, "/v1/federations", {
    method: "POST",
    body: {
      config,
      rounds: 4,
      clientsPerRound: 3,
      inputShape: [header.split(",").length - 1],
      numOutputs: 2,
      aggregation: { clipNorm: 10 },
      secureAggregation: true,
      securePhaseSecs: 20,
    },
  });
  assert.equal(created.status, 202, created.text);
  const federation = created.json.id;
  // Two npm-package clients (each in its own Node process, one per server) and a native one.
  const packageClient = (url, csv) => {
    const dir = tempDir("kiln-fed-js-");
    writeFileSync(join(dir, "part.csv"), csv);
    const script = join(import.meta.dirname, "../js/federation-client.mjs");
    const args = [script, packageEntryUrl(), url, federation, "", join(dir, "part.csv"), join(dir, "state.json")];
    return exitOf(spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] }));
  };
  const onA = packageClient(a.url, part(0));
  const onB = packageClient(b.url, part(1));
  const nativeCsv = join(tempDir("kiln-fed-native-"), "part.csv");
  writeFileSync(nativeCsv, part(2));
  const native = exitOf(
    spawn(kilnBin, ["federate", "join", b.url, "--federation", federation, "--data", nativeCsv, "--header"], {
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  // Server B dies after the first round; B's clients retry until it is back.
  for (let tries = 0; (await api(a, `/v1/federations/${federation}`)).json.round < 1; tries++) {
    assert.ok(tries < 600, "round 0 did not close");
    await sleep(100);
  }
  b.child.kill("SIGKILL");
  await b.exited;
  await sleep(1000);
  b = await worker("federation", objects, { addr: addrB });
  const [clientA, clientB, nativeClient] = await Promise.all([onA, onB, native]);
  for (const client of [clientA, clientB, nativeClient]) assert.equal(client.code, 0, client.err + client.out);
  const done = (client) => JSON.parse(client.out.trim().split("\n").at(-1));
  assert.equal(done(clientA).type, "done");
  assert.equal(done(clientA).modelId, done(clientB).modelId);
  for (const server of [a, b]) {
    const view = await api(server, `/v1/federations/${federation}`);
    assert.equal(view.json.status, "completed", view.text);
    assert.deepEqual(
      view.json.history.map((r) => r.round),
      [0, 1, 2, 3],
      "every round closed exactly once",
    );
  }
  const events = await readEventsOf(a, federation);
  const closed = events.filter((e) => e.event === "roundClosed").map((e) => e.data.round);
  assert.deepEqual(closed, [0, 1, 2, 3], JSON.stringify(closed));
});

/** A child process's exit code and output, once it exits (listened for from its start). */
function exitOf(child) {
  let out = "";
  let err = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    err += d;
  });
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, out, err })));
}

/** A federation's events (its stream ends with the final status). */
async function readEventsOf(server, federation) {
  const response = await fetch(`${server.url}/v1/federations/${federation}/events`);
  const text = await response.text();
  const events = [];
  for (const block of text.split("\n\n")) {
    const event = block.match(/^event: (.*)$/m)?.[1];
    const data = block.match(/^data: (.*)$/m)?.[1];
    if (event && data) events.push({ event, data: JSON.parse(data) });
  }
  return events;
}
