// `kiln serve` over real HTTP on loopback: every endpoint, uploads, the FIFO queue, SSE resume,
// tokens, limits, cancel, SIGKILL + restart, and server-trained models in the npm package.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { kilnBin, tempDir, installPackage, startServer, stopServer as stop, killServers } from "./helpers.mjs";
import { api, waitFor, readEvents, twoClassCsv, DETERMINISTIC, burnpackTensorData } from "./server-api.mjs";

/** A safetensors file with `features` (f32 [n, 4]) and `labels` (i32 [n]). */
function safetensors(n = 200) {
  const features = new Float32Array(n * 4);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 3;
    for (let j = 0; j < 4; j++) features[i * 4 + j] = labels[i] * 2 - 2 + ((i + j) % 4) / 8;
  }
  const fBytes = features.byteLength;
  const header = JSON.stringify({
    features: { dtype: "F32", shape: [n, 4], data_offsets: [0, fBytes] },
    labels: { dtype: "I32", shape: [n], data_offsets: [fBytes, fBytes + labels.byteLength] },
  });
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + fBytes + labels.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(new Uint8Array(features.buffer), 8 + h.length);
  out.set(new Uint8Array(labels.buffer), 8 + h.length + fBytes);
  return out;
}

after(killServers);

const FAST = { training: { num_passes: 2, batch_size: 16 } };

test("health, OpenAPI, problem+json for unknown routes", async () => {
  const s = await startServer();
  const health = await api(s, "/v1/health");
  assert.equal(health.status, 200);
  assert.deepEqual(Object.keys(health.json).sort(), ["backend", "status", "version"]);
  assert.equal(health.json.status, "ok");
  const doc = await api(s, "/v1/openapi.json");
  assert.equal(doc.status, 200);
  for (const path of [
    "/v1/jobs",
    "/v1/jobs/{id}/events",
    "/v1/datasets",
    "/v1/models/{model_id}/predict",
    "/v1/workers",
    "/v1/workers/{id}/drain",
  ]) {
    assert.ok(doc.json.paths[path], `openapi lacks ${path}`);
  }
  const missing = await api(s, "/v1/nothing");
  assert.equal(missing.status, 404);
  assert.match(missing.headers.get("content-type"), /application\/problem\+json/);
  assert.equal(missing.json.type, "urn:kiln:problem:not-found");
  const noJob = await api(s, "/v1/jobs/trainingjob-nope");
  assert.equal(noJob.status, 404);
  assert.match(noJob.json.detail, /no job/);
  assert.equal((await stop(s)).code, 0);
});

test("a CSV upload trains remotely; the model downloads, predicts like `kiln predict` and in the npm package", async () => {
  const s = await startServer();
  const csv = twoClassCsv();
  const up = await api(s, "/v1/datasets?label_column=label&header=true", {
    method: "POST",
    body: csv,
    type: "text/csv",
  });
  assert.equal(up.status, 201, up.text);
  assert.match(up.json.id, /^dataset-[0-9a-f-]{36}$/);
  assert.equal(up.json.rows, 240);
  assert.deepEqual(up.json.sampleShape, [4]);
  assert.equal((await api(s, "/v1/datasets")).json.length, 1);

  const submitted = await api(s, "/v1/jobs", {
    method: "POST",
    body: { config: { ...FAST, name: "remote-csv" }, dataset: up.json.id, tags: { team: "a" } },
  });
  assert.equal(submitted.status, 202, submitted.text);
  assert.match(submitted.json.id, /^trainingjob-[0-9a-f-]{36}$/);
  assert.equal(submitted.json.status, "queued");
  const done = await waitFor(s, submitted.json.id);
  assert.equal(done.status, "completed", JSON.stringify(done));
  assert.ok(done.result.finalMetrics.test_accuracy > 0.9, JSON.stringify(done.result.finalMetrics));
  assert.ok(done.startedAt >= done.createdAt && done.finishedAt >= done.startedAt);
  assert.equal((await api(s, "/v1/jobs?tag=team:a")).json.length, 1);
  assert.equal((await api(s, "/v1/jobs?tag=team:b")).json.length, 0);
  assert.equal((await api(s, "/v1/jobs?status=completed")).json.length, 1);
  const metrics = await api(s, `/v1/jobs/${done.id}/metrics`);
  assert.ok(metrics.json.some((m) => m.event === "evaluated"));

  const modelId = done.result.modelId;
  const models = await api(s, "/v1/models");
  assert.ok(
    models.json.some((m) => m.modelId === modelId),
    models.text,
  );
  const info = await api(s, `/v1/models/${modelId}/info`);
  assert.deepEqual(info.json.inputShape, [4]);
  const bytes = new Uint8Array(await (await fetch(`${s.url}/v1/models/${modelId}`)).arrayBuffer());
  assert.ok(bytes.length > 100);

  // The same rows through the HTTP API, `kiln predict` on the server's store, and the npm package.
  const rows = csv
    .trim()
    .split("\n")
    .slice(1, 21)
    .map((l) => l.split(",").slice(0, 4).map(Number));
  const http = await api(s, `/v1/models/${modelId}/predict`, {
    method: "POST",
    body: { features: rows.flat(), shape: [rows.length, 4] },
  });
  assert.equal(http.status, 200, http.text);
  assert.deepEqual(http.json.shape, [20, 2]);
  const b64 = Buffer.from(new Float32Array(rows.flat()).buffer).toString("base64");
  const http64 = await api(s, `/v1/models/${modelId}/predict`, { method: "POST", body: { features: b64 } });
  assert.deepEqual(http64.json.outputs, http.json.outputs);
  const input = join(tempDir("kiln-predict-"), "x.csv");
  writeFileSync(input, "a,b,c,d\n" + rows.map((r) => r.join(",")).join("\n") + "\n");
  const cli = execFileSync(
    kilnBin,
    ["predict", "--model", modelId, "--input", input, "--store", join(s.dataDir, "models")],
    { encoding: "utf8" },
  )
    .trim()
    .split("\n")
    .slice(1)
    .map((l) => l.split(",").slice(1).map(Number));
  const { Kiln, MemoryStore } = await installPackage();
  const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
  const model = await kiln.preloadedModel(bytes);
  const js = await model.predict(new Float32Array(rows.flat()));
  for (let i = 0; i < 20; i++) {
    for (let c = 0; c < 2; c++) {
      const h = http.json.outputs[i * 2 + c];
      assert.ok(Math.abs(h - cli[i][c]) < 1e-5, `row ${i}: http ${h} vs kiln predict ${cli[i][c]}`);
      assert.ok(Math.abs(h - js[i * 2 + c]) < 1e-5, `row ${i}: http ${h} vs npm ${js[i * 2 + c]}`);
    }
  }
  const badShape = await api(s, `/v1/models/${modelId}/predict`, {
    method: "POST",
    body: { features: [1, 2, 3], shape: [1, 3] },
  });
  assert.equal(badShape.status, 400);

  // Holdout predictions: the test split, by source row, with the model's probabilities.
  const holdout = await api(s, `/v1/jobs/${done.id}/holdout`);
  assert.equal(holdout.status, 200, holdout.text);
  assert.match(holdout.headers.get("content-type"), /text\/csv/);
  const holdoutLines = holdout.text.trim().split("\n");
  assert.equal(holdoutLines[0], "row,label,prediction,p0,p1");
  const sourceRows = csv
    .trim()
    .split("\n")
    .slice(1)
    .map((l) => l.split(",").map(Number));
  const testRows = holdoutLines.slice(1).map((l) => l.split(",").map(Number));
  assert.ok(testRows.length >= 20, `${testRows.length} test rows`);
  let correct = 0;
  for (const [row, label, prediction, p0, p1] of testRows) {
    assert.equal(label, sourceRows[row][4], `row ${row}: the label is not the source's`);
    assert.equal(prediction, p1 > p0 ? 1 : 0);
    assert.ok(Math.abs(p0 + p1 - 1) < 1e-4);
    if (prediction === label) correct++;
  }
  const acc = correct / testRows.length;
  assert.ok(
    Math.abs(acc - done.result.finalMetrics.test_accuracy) < 1e-6,
    `${acc} vs ${done.result.finalMetrics.test_accuracy}`,
  );

  // A batch prediction job over the uploaded dataset: a bp-job whose CSV matches online predict.
  const bp = await api(s, "/v1/predictions", { method: "POST", body: { model: modelId, dataset: up.json.id } });
  assert.equal(bp.status, 202, bp.text);
  assert.match(bp.json.id, /^bp-job-[0-9a-f-]{36}$/);
  assert.equal(bp.json.kind, "prediction");
  const bpDone = await waitFor(s, bp.json.id);
  assert.equal(bpDone.status, "completed", JSON.stringify(bpDone));
  assert.equal(bpDone.result.rows, 240);
  assert.equal((await api(s, `/v1/predictions/${bp.json.id}`)).json.status, "completed");
  const bpOut = await api(s, `/v1/predictions/${bp.json.id}/output`);
  const bpLines = bpOut.text.trim().split("\n");
  assert.equal(bpLines[0], "prediction,p0,p1");
  assert.equal(bpLines.length, 241);
  for (let i = 0; i < 20; i++) {
    const [, p0, p1] = bpLines[i + 1].split(",").map(Number);
    assert.ok(Math.abs(p0 - http.json.outputs[i * 2]) < 1e-5 && Math.abs(p1 - http.json.outputs[i * 2 + 1]) < 1e-5);
  }
  assert.equal(
    (await api(s, "/v1/predictions", { method: "POST", body: { model: "no-such-model", dataset: up.json.id } })).status,
    400,
  );
  assert.equal((await api(s, `/v1/predictions/${done.id}`)).status, 404);
  assert.equal((await api(s, "/v1/jobs")).json.length, 1, "prediction jobs are not training jobs");

  // Import, delete, and the dataset's lifecycle.
  assert.equal((await api(s, `/v1/models`, { method: "POST", body: bytes })).status, 400); // already stored
  assert.equal((await api(s, `/v1/models?force=true`, { method: "POST", body: bytes })).status, 201);
  assert.equal((await api(s, `/v1/models/${modelId}`, { method: "DELETE" })).status, 204);
  assert.equal((await api(s, `/v1/models/${modelId}`, { method: "DELETE" })).status, 404);
  assert.equal((await api(s, `/v1/models/${modelId}/info`)).status, 404);
  assert.equal((await api(s, `/v1/datasets/${up.json.id}`, { method: "DELETE" })).status, 204);
  assert.equal((await api(s, `/v1/datasets/${up.json.id}`, { method: "DELETE" })).status, 404);
  assert.equal((await api(s, `/v1/jobs/${done.id}`, { method: "DELETE" })).status, 204);
  assert.equal((await api(s, `/v1/jobs/${done.id}`)).status, 404);
  assert.equal((await stop(s)).code, 0);
});

test("a safetensors upload trains; bad uploads and remote paths are 400s naming the cause", async () => {
  const s = await startServer();
  const up = await api(s, "/v1/datasets", { method: "POST", body: safetensors() });
  assert.equal(up.status, 201, up.text);
  assert.deepEqual([up.json.rows, up.json.sampleShape, up.json.format], [200, [4], "safetensors"]);
  const job = await api(s, "/v1/jobs", { method: "POST", body: { config: FAST, dataset: up.json.id } });
  const done = await waitFor(s, job.json.id);
  assert.equal(done.status, "completed", JSON.stringify(done));
  assert.equal(done.result.confusionMatrix?.length ?? 3, 3);

  const cases = [
    [
      { config: { data: { source: "csv", path: "/etc/passwd" } } },
      /data.path: a remote job cannot name a server-side path/,
    ],
    [{ config: { data: { source: "fashion-mnist" } } }, /data.source: fashion-mnist and idx read the server's files/],
    [{ config: { data: { source: "idx", images: "/etc/x", labels: "/etc/y" } } }, /data.images/],
    [{ config: { training: { learning_rate: -1 } } }, /training/],
    [{ config: "training:\n  batch_size: 0\n" }, /training.batch_size/],
    [{ config: FAST, dataset: "dataset-missing" }, /dataset: no dataset/],
    [{ config: FAST, tags: { "": "x" } }, /tags/],
    [{ config: FAST, surprise: 1 }, /unknown field/],
  ];
  for (const [body, message] of cases) {
    const r = await api(s, "/v1/jobs", { method: "POST", body });
    assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status} ${r.text}`);
    assert.match(r.headers.get("content-type"), /application\/problem\+json/);
    assert.equal(r.json.type, "urn:kiln:problem:bad-input");
    assert.match(r.json.detail, message);
  }
  const uploads = [
    [new Uint8Array([1, 2, 3]), "application/octet-stream", /not safetensors/],
    ["a,b\n1,x\n", "text/csv", /dataset|CSV|line/],
    ["a,b\n1,2\n", "application/json", /Content-Type/],
  ];
  for (const [body, type, message] of uploads) {
    const r = await api(s, "/v1/datasets", { method: "POST", body, type });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.detail, message);
  }
  const broken = await api(s, "/v1/jobs", { method: "POST", body: "{not json", type: "application/json" });
  assert.equal(broken.status, 400);
  assert.match(broken.headers.get("content-type"), /problem\+json/);
  assert.equal((await stop(s)).code, 0);
});

test("tokens: 401 without or with a wrong one; health is open; no token means loopback only", async () => {
  const dir = tempDir("kiln-token-");
  const tokenFile = join(dir, "tokens");
  writeFileSync(tokenFile, "# tokens\nfirst-secret\nsecond-secret\n");
  const s = await startServer(["--token-file", tokenFile]);
  assert.equal((await api(s, "/v1/health")).status, 200);
  const none = await api(s, "/v1/jobs");
  assert.equal(none.status, 401);
  assert.equal(none.json.type, "urn:kiln:problem:unauthorized");
  assert.equal(none.headers.get("www-authenticate"), "Bearer");
  assert.equal((await api(s, "/v1/jobs", { token: "wrong" })).status, 401);
  assert.equal((await api(s, "/v1/models", { token: "second-secret" })).status, 200);
  assert.equal((await api(s, "/v1/openapi.json", { token: "first-secret" })).status, 200);
  const job = await api(s, "/v1/jobs", {
    method: "POST",
    token: "first-secret",
    body: { config: { fast_dev_run: true } },
  });
  assert.equal(job.status, 202);
  assert.equal((await readEvents(s, job.json.id, { token: "first-secret" })).at(-1).data.status, "completed");
  assert.equal((await stop(s)).code, 0);

  let refused = "";
  try {
    execFileSync(kilnBin, ["serve", "--addr", "0.0.0.0:0", "--data-dir", tempDir("kiln-open-")], {
      encoding: "utf8",
      stdio: "pipe",
    });
  } catch (e) {
    assert.equal(e.status, 2);
    refused = e.stderr;
  }
  assert.match(refused, /without --token-file the server only binds a loopback address/);
});

test("413 for a body over --max-upload-mb, 429 with Retry-After when the queue is full", async () => {
  const s = await startServer(["--max-upload-mb", "1", "--max-queued-jobs", "1"]);
  const big = await api(s, "/v1/datasets", {
    method: "POST",
    body: "a,b\n" + "1,0\n".repeat(600000),
    type: "text/csv",
  });
  assert.equal(big.status, 413);
  assert.equal(big.json.type, "urn:kiln:problem:too-large");
  assert.match(big.json.detail, /max-upload-mb/);
  // One job trains, one waits; the next is refused.
  const long = { training: { num_passes: 400 } };
  const first = await api(s, "/v1/jobs", { method: "POST", body: { config: long } });
  await readEvents(s, first.json.id, { until: (e) => e.event === "progress" });
  const second = await api(s, "/v1/jobs", { method: "POST", body: { config: FAST } });
  assert.equal(second.status, 202);
  const third = await api(s, "/v1/jobs", { method: "POST", body: { config: FAST } });
  assert.equal(third.status, 429, third.text);
  assert.equal(third.headers.get("retry-after"), "30");
  assert.equal(third.json.type, "urn:kiln:problem:queue-full");
  // Cancel: the training one and the queued one; idempotent; 409 once completed.
  assert.equal((await api(s, `/v1/jobs/${second.json.id}/cancel`, { method: "POST" })).json.status, "cancelled");
  assert.equal((await api(s, `/v1/jobs/${first.json.id}`, { method: "DELETE" })).status, 409);
  assert.equal((await api(s, `/v1/jobs/${first.json.id}/cancel`, { method: "POST" })).status, 202);
  assert.equal((await waitFor(s, first.json.id)).status, "cancelled");
  assert.equal((await api(s, `/v1/jobs/${first.json.id}/cancel`, { method: "POST" })).status, 202);
  const events = await readEvents(s, second.json.id);
  assert.deepEqual(
    events.map((e) => e.data.status),
    ["queued", "cancelled"],
  );
  const fast = await api(s, "/v1/jobs", { method: "POST", body: { config: { fast_dev_run: true } } });
  await waitFor(s, fast.json.id);
  const late = await api(s, `/v1/jobs/${fast.json.id}/cancel`, { method: "POST" });
  assert.equal(late.status, 409);
  assert.equal(late.json.type, "urn:kiln:problem:conflict");
  assert.equal((await stop(s)).code, 0);
});

test("6 jobs with --max-concurrent-jobs 1 complete in submission order; SSE resumes with Last-Event-ID", async () => {
  const s = await startServer(["--max-concurrent-jobs", "1"]);
  const ids = [];
  for (let i = 0; i < 6; i++) {
    const r = await api(s, "/v1/jobs", { method: "POST", body: { config: { ...FAST, seed: i } } });
    assert.equal(r.status, 202);
    ids.push(r.json.id);
  }
  const full = await readEvents(s, ids[5]);
  const jobs = [];
  for (const id of ids) jobs.push(await waitFor(s, id));
  for (const job of jobs) assert.equal(job.status, "completed");
  for (let i = 1; i < jobs.length; i++) {
    assert.ok(jobs[i].startedAt >= jobs[i - 1].finishedAt, `job ${i} started before job ${i - 1} ended`);
  }
  // The stream: increasing ids, every kind of event, the final status last.
  assert.deepEqual(
    full.map((e) => e.id),
    full.map((_, i) => i + 1),
  );
  const kinds = new Set(full.map((e) => e.event));
  for (const kind of ["status", "started", "progress", "evaluated", "checkpoint"]) assert.ok(kinds.has(kind), kind);
  assert.equal(full.at(-1).data.status, "completed");
  // Reconnecting after event k gets exactly the rest.
  const k = 3;
  const rest = await readEvents(s, ids[5], { lastEventId: k });
  assert.deepEqual(
    rest.map((e) => e.id),
    full.slice(k).map((e) => e.id),
  );
  assert.deepEqual(
    rest.map((e) => e.data),
    full.slice(k).map((e) => e.data),
  );
  // A live reconnect: drop the stream mid-job, resume, and nothing is missing or repeated.
  const live = await api(s, "/v1/jobs", {
    method: "POST",
    body: { config: { training: { num_passes: 6, batch_size: 16 } } },
  });
  const firstPart = await readEvents(s, live.json.id, { until: (e) => e.event === "progress" });
  const secondPart = await readEvents(s, live.json.id, { lastEventId: firstPart.at(-1).id });
  const all = [...firstPart, ...secondPart].map((e) => e.id);
  assert.deepEqual(
    all,
    all.map((_, i) => i + 1),
  );
  assert.equal(secondPart.at(-1).data.status, "completed");
  assert.equal((await stop(s)).code, 0);
});

/** A burnpack file's tensor data (after its header, whose random parameter ids differ per run). */
const parameterBytes = (path) => burnpackTensorData(readFileSync(path));

test("SIGKILL mid-job: after a restart the job resumes from its checkpoint and ends with the uninterrupted run's weights", async () => {
  const straight = await startServer();
  const a = await api(straight, "/v1/jobs", { method: "POST", body: { config: DETERMINISTIC } });
  const doneA = await waitFor(straight, a.json.id);
  assert.equal(doneA.status, "completed");
  assert.equal((await stop(straight)).code, 0);

  const dataDir = tempDir("kiln-kill-");
  let s = await startServer([], dataDir);
  const b = await api(s, "/v1/jobs", { method: "POST", body: { config: DETERMINISTIC } });
  const seen = await readEvents(s, b.json.id, { until: (e) => e.event === "checkpoint" && e.data.epoch >= 3 });
  assert.ok(seen.length > 0);
  await stop(s, "SIGKILL");
  assert.ok(!existsSync(join(dataDir, "jobs", b.json.id, "final_weights.bpk")), "the run ended before the kill");

  s = await startServer([], dataDir);
  const doneB = await waitFor(s, b.json.id);
  assert.equal(doneB.status, "completed", JSON.stringify(doneB));
  const events = await readEvents(s, b.json.id);
  assert.ok(events.some((e) => e.event === "interrupted" && /resumes from its latest checkpoint/.test(e.data.reason)));
  assert.ok(
    events.some((e) => e.event === "started" && e.data.start_epoch > 1),
    "did not resume from a checkpoint",
  );
  const weightsA = parameterBytes(join(straight.dataDir, "jobs", a.json.id, "final_weights.bpk"));
  const weightsB = parameterBytes(join(dataDir, "jobs", b.json.id, "final_weights.bpk"));
  assert.ok(weightsA.length > 1000 && weightsA.equals(weightsB), "final weights differ from the uninterrupted run");
  assert.deepEqual(doneB.result.finalMetrics, doneA.result.finalMetrics);

  // SIGTERM while training: exit 0; the job checkpoints the epoch it is in (this config would
  // otherwise checkpoint only every 1000 epochs), goes back to the queue, and resumes right there.
  const rare = {
    ...DETERMINISTIC,
    training: { num_passes: 200, batch_size: 16 },
    checkpoint: { every_epochs: 1000, save_top_k: 1 },
  };
  const c = await api(s, "/v1/jobs", { method: "POST", body: { config: rare } });
  await readEvents(s, c.json.id, { until: (e) => e.event === "evaluated" && e.data.epoch >= 2 });
  assert.equal((await stop(s, "SIGTERM")).code, 0);
  s = await startServer([], dataDir);
  const resumed = await readEvents(s, c.json.id, { until: (e) => e.event === "started" && e.data.start_epoch > 1 });
  const kinds = resumed.map((e) => e.event);
  assert.ok(
    resumed.some((e) => e.event === "interrupted" && /server is stopping/.test(e.data.reason)),
    JSON.stringify(kinds),
  );
  const stopCheckpoint = resumed.filter((e) => e.event === "checkpoint").at(-1);
  assert.ok(stopCheckpoint, `no checkpoint at the stop: ${kinds}`);
  const lastEvaluated = resumed.filter((e) => e.event === "evaluated").at(-1);
  assert.equal(stopCheckpoint.data.epoch, lastEvaluated.data.epoch, "the stop lost finished epochs");
  assert.equal(resumed.at(-1).data.start_epoch, stopCheckpoint.data.epoch + 1);
  await api(s, `/v1/jobs/${c.json.id}/cancel`, { method: "POST" });
  assert.equal((await waitFor(s, c.json.id)).status, "cancelled");
  assert.equal((await stop(s)).code, 0);
});

test("the npm package's remote mode: Kiln.connect has the API of Kiln.create, with jobs on the server", async () => {
  const dir = tempDir("kiln-remote-");
  const tokenFile = join(dir, "tokens");
  writeFileSync(tokenFile, "remote-secret\n");
  const s = await startServer(["--token-file", tokenFile]);
  const { Kiln, MemoryStore } = await installPackage();
  await assert.rejects(Kiln.connect(s.url, { token: "wrong" }), /401|token/);
  await assert.rejects(Kiln.connect("http://127.0.0.1:1"), /cannot reach the Kiln server/);
  const kiln = await Kiln.connect(s.url, { token: "remote-secret", backend: "cpu", store: new MemoryStore() });
  assert.equal(kiln.backend.kind, "remote");
  assert.equal(kiln.backend.server, "cpu");

  // Arrays: uploaded as safetensors; the job id is known at once; progress and events arrive.
  const n = 180;
  const features = new Float32Array(n * 4);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    for (let j = 0; j < 4; j++) features[i * 4 + j] = (labels[i] ? 1 : -1) + ((i + j) % 5) / 10;
  }
  const job = kiln.train(
    { data: { source: "inline" }, training: { num_passes: 3, batch_size: 16 } },
    { features, labels, shape: [n, 4] },
  );
  assert.match(job.id, /^trainingjob-[0-9a-f-]{36}$/);
  assert.equal(job.status(), "queued");
  const progress = [];
  job.onProgress((p) => progress.push(p));
  const kinds = [];
  const iterate = (async () => {
    for await (const e of job.events()) kinds.push(e.event);
  })();
  const info = await job.waitForTraining();
  await iterate;
  assert.equal(job.status(), "completed");
  assert.equal(job.trainedModel.modelId, info.modelId);
  assert.equal(job.trainedModel.guid, info.modelId); // the seeds' name, in remote mode too
  assert.ok(progress.length > 0 && progress.at(-1).epoch === 3, JSON.stringify(progress.at(-1)));
  assert.ok(kinds.includes("started") && kinds.includes("evaluated"), kinds.join(","));
  const remoteJob = await (
    await fetch(`${s.url}/v1/jobs/${job.id}`, { headers: { authorization: "Bearer remote-secret" } })
  ).json();
  assert.equal(remoteJob.status, "completed");

  // The model predicts locally what the server predicts.
  const model = await kiln.preloadedModel(info.modelId);
  const rows = features.subarray(0, 40);
  const local = await model.predict(rows);
  const served = await (
    await fetch(`${s.url}/v1/models/${info.modelId}/predict`, {
      method: "POST",
      headers: { authorization: "Bearer remote-secret", "content-type": "application/json" },
      body: JSON.stringify({ features: [...rows] }),
    })
  ).json();
  served.outputs.forEach((v, i) => assert.ok(Math.abs(v - local[i]) < 1e-5));

  // CSV data, the model list, import/delete.
  const csvJob = kiln.train(
    { data: { label_column: "label" }, training: { num_passes: 2, batch_size: 16 } },
    { csv: twoClassCsv() },
  );
  const csvInfo = await csvJob.waitForTraining();
  assert.ok(csvInfo.finalMetrics.test_accuracy > 0.9);
  const listed = (await kiln.listModels()).map((m) => m.modelId);
  assert.ok(listed.includes(info.modelId) && listed.includes(csvInfo.modelId));
  const bytes = await model.export();
  assert.equal(await kiln.deleteModel(info.modelId), true);
  assert.equal(await kiln.deleteModel(info.modelId), false);
  assert.equal(await kiln.importModel(bytes), info.modelId);
  await assert.rejects(kiln.importModel(bytes), /already in the store/);

  // The job list in pages: two jobs so far, one a page, the cursor walks them in order.
  const first = await kiln.listJobs({ limit: 1 });
  assert.equal(first.jobs.length, 1);
  assert.ok(first.nextCursor, "a first page of one has a cursor");
  const second = await kiln.listJobs({ limit: 1, after: first.nextCursor });
  assert.deepEqual([first.jobs[0].id, second.jobs[0].id], [job.id, csvJob.id]);
  const newestFirst = await kiln.listJobs({ order: "desc", status: "completed" });
  assert.deepEqual(
    newestFirst.jobs.map((j) => j.id),
    [csvJob.id, job.id],
  );
  assert.equal(newestFirst.nextCursor, null);
  const datasets = await kiln.listDatasets({ limit: 1 });
  assert.equal(datasets.datasets.length, 1);
  assert.equal((await kiln.listDatasets({ after: datasets.nextCursor })).datasets.length, 1); // the features, then the CSV
  await assert.rejects(kiln.listJobs({ limit: 0 }), /limit/);

  // A refused config rejects waitForTraining with the server's message; cancel works.
  const bad = kiln.train({ data: { source: "csv", path: "/etc/passwd" } });
  await assert.rejects(bad.waitForTraining(), /data.path: a remote job cannot name a server-side path/);
  assert.equal(bad.status(), "failed");
  const long = kiln.train({ training: { num_passes: 500 } });
  await new Promise((resolve) => long.onProgress(resolve));
  long.cancel();
  await assert.rejects(long.waitForTraining(), (e) => e.status === "cancelled");
  assert.equal(long.status(), "cancelled");
  await assert.rejects(kiln.validateConfig({ training: { batch_size: 0 } }), /training.batch_size/);
  assert.equal((await stop(s)).code, 0);
});

test("--backend wgpu (lavapipe here): a job trains on wgpu with the losses of the same job on a CPU server", async () => {
  const config = { seed: 11, deterministic: true, training: { num_passes: 1, log_every_steps: 5 } };
  const losses = {};
  for (const backend of ["cpu", "wgpu"]) {
    const s = await startServer(["--backend", backend]);
    const job = await api(s, "/v1/jobs", { method: "POST", body: { config } });
    const done = await waitFor(s, job.json.id, { timeout: 300000 });
    assert.equal(done.status, "completed", `${backend}: ${JSON.stringify(done)}`);
    assert.equal(done.result.backend, backend);
    losses[backend] = (await readEvents(s, job.json.id)).filter((e) => e.event === "progress").map((e) => e.data.loss);
    assert.equal((await stop(s)).code, 0);
  }
  assert.ok(losses.cpu.length >= 5 && losses.cpu.length === losses.wgpu.length, JSON.stringify(losses));
  losses.cpu.forEach((x, i) =>
    assert.ok(
      Math.abs(x - losses.wgpu[i]) <= 1e-3 * Math.max(1, Math.abs(x)),
      `step ${i}: cpu ${x} vs wgpu ${losses.wgpu[i]}`,
    ),
  );
});
