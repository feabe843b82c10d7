// The npm package as a consumer uses it, in Node 20 on the CPU backend.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, copyFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { installPackage, installCpuEntry, packageEntryUrl, tempDir } from "./helpers.mjs";

const { Kiln, MemoryStore, loadedBuilds } = await installPackage();
const kiln = await Kiln.create({ backend: "auto", store: new MemoryStore() });

test("auto picks the CPU in Node and says why", () => {
  assert.equal(kiln.backend.kind, "cpu");
  assert.match(kiln.backend.reason, /WebGPU unavailable/);
});

test("Node loads the CPU wasm build only (never the WebGPU one)", async () => {
  assert.equal(kiln.backend.build, "cpu");
  await kiln.validateConfig({ training: { num_passes: 1 } });
  assert.deepEqual(loadedBuilds(), ["cpu"]);
});

test("kiln/cpu: the same API on the CPU build; WebGPU refused naming the entry to use", async () => {
  const cpu = await installCpuEntry();
  await assert.rejects(
    cpu.Kiln.create({ backend: "webgpu" }),
    /"kiln\/cpu" does not include; import from "kiln" instead/,
  );
  const small = await cpu.Kiln.create({ store: new cpu.MemoryStore() });
  assert.equal(small.backend.kind, "cpu");
  assert.equal(small.backend.build, "cpu");
  assert.match(small.backend.reason, /"kiln\/cpu" has only the CPU build/);
  // The same deterministic run through either entry gives the same model bytes.
  const config = { seed: 3, deterministic: true, training: { num_passes: 2 } };
  const viaCpu = await small.train(config).waitForTraining();
  const viaFull = await kiln.train(config).waitForTraining();
  assert.deepEqual(viaCpu.history, viaFull.history);
  const bytes = await (await small.preloadedModel(viaCpu.modelId)).export();
  const imported = await kiln.importModel(bytes);
  assert.equal(imported, viaCpu.modelId);
  const features = new Float32Array(64).fill(0.5);
  assert.deepEqual(
    await (await kiln.preloadedModel(imported)).predict(features, [1, 64]),
    await (await small.preloadedModel(viaCpu.modelId)).predict(features, [1, 64]),
  );
  assert.deepEqual(loadedBuilds(), ["cpu"]);
});

test("webgpu in Node is a clear error, not a silent fallback", async () => {
  await assert.rejects(Kiln.create({ backend: "webgpu" }), /backend "webgpu" was requested but WebGPU unavailable/);
  await assert.rejects(Kiln.create({ backend: "tpu" }), TypeError);
});

test("trains digits to >= 0.9 accuracy with the documented status transitions", async () => {
  const job = kiln.train({ training: { num_passes: 8 } });
  assert.match(job.id, /^trainingjob-[0-9a-f-]{36}$/);
  const statuses = new Set([job.status()]);
  let progressCount = 0;
  job.onProgress((p) => {
    progressCount += 1;
    statuses.add(job.status());
    assert.ok(p.step <= p.totalSteps && Number.isFinite(p.loss));
  });
  assert.equal(job.trainedModel, undefined);
  const info = await job.waitForTraining();
  statuses.add(job.status());
  assert.deepEqual([...statuses], ["queued", "processing", "completed"]);
  assert.ok(progressCount > 5, `only ${progressCount} progress reports`);
  assert.ok(info.finalMetrics.test_accuracy >= 0.9, `accuracy ${info.finalMetrics.test_accuracy}`);
  assert.equal(job.trainedModel.modelId, info.modelId);
  // The seeds' spelling: `job.trainedModel.guid` is the same id, and so is the result's `guid`.
  assert.equal(job.trainedModel.guid, info.modelId);
  assert.equal(info.guid, info.modelId);
  assert.ok(info.history.length >= 8);

  const model = await kiln.preloadedModel(job.trainedModel.guid);
  assert.equal(model.modelId, info.modelId);
  const row = new Float32Array(64).map((_, i) => (i * 7) % 17);
  const probs = await model.predict(new Float32Array([...row, ...row]), [2, 64]);
  assert.equal(probs.length, 20);
  const sum = probs.slice(0, 10).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-4, `probabilities sum to ${sum}`);
  assert.deepEqual(probs.slice(0, 10), probs.slice(10, 20));

  const listed = await kiln.listModels();
  assert.ok(listed.some((m) => m.modelId === info.modelId && m.inputShape.join() === "1,8,8"));
});

test("events() yields progress and evaluations, then ends", async () => {
  const job = kiln.train({ training: { num_passes: 2 } });
  const kinds = new Set();
  for await (const event of job.events()) kinds.add(event.event);
  assert.ok(kinds.has("progress") && kinds.has("evaluated"), [...kinds].join());
  assert.equal(job.status(), "completed");
});

test("cancel ends the job as cancelled and rejects waitForTraining", async () => {
  const job = kiln.train({ training: { num_passes: 200 } });
  job.onProgress(() => job.cancel());
  await assert.rejects(
    job.waitForTraining(),
    (e) => e instanceof Error && e.status === "cancelled" && /cancelled/.test(e.message),
  );
  assert.equal(job.status(), "cancelled");
  assert.equal(job.trainedModel, undefined);
});

test("several jobs run at once and interleave", async () => {
  const a = kiln.train({ name: "a", training: { num_passes: 3 } });
  const b = kiln.train({ name: "b", training: { num_passes: 3 } });
  const order = [];
  a.onProgress(() => order.push("a"));
  b.onProgress(() => order.push("b"));
  const [ia, ib] = await Promise.all([a.waitForTraining(), b.waitForTraining()]);
  assert.notEqual(ia.modelId, ib.modelId);
  const firstB = order.indexOf("b");
  assert.ok(firstB > 0 && order.lastIndexOf("a") > firstB, `no interleaving: ${order.join("")}`);
});

test("inline data trains a regression", async () => {
  const n = 200;
  const features = new Float32Array(n * 2);
  const labels = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = (i % 20) / 10,
      y = Math.floor(i / 20) / 10;
    features.set([x, y], i * 2);
    labels[i] = 3 * x - 2 * y + 1;
  }
  const job = kiln.train(
    {
      task: "regression",
      training: { num_passes: 60, batch_size: 16, weight_optimization: { learning_rate: 0.01 } },
      validation: { metrics: ["loss", "mse", "r2"] },
      checkpoint: { main_metric: "val_mse" },
    },
    { features, labels, shape: [n, 2] },
  );
  const info = await job.waitForTraining();
  assert.ok(info.finalMetrics.test_r2 > 0.9, `r2 ${info.finalMetrics.test_r2}`);
});

test("image bytes (Uint8Array) train exactly like their float copy", async () => {
  // Two classes of 4×4 "images": bright left half or bright right half, with noise.
  const n = 128,
    size = 16;
  const pixels = new Uint8Array(n * size);
  const labels = new Int32Array(n);
  let seed = 7;
  const noise = () => (seed = (seed * 1103515245 + 12345) % 2147483648) % 60;
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    for (let p = 0; p < size; p++) {
      const bright = p % 4 < 2 === (labels[i] === 0);
      pixels[i * size + p] = (bright ? 190 : 10) + noise();
    }
  }
  const config = { seed: 3, deterministic: true, training: { num_passes: 4, batch_size: 16 } };
  const shape = [n, 1, 4, 4];
  const fromBytes = await kiln.train(config, { features: pixels, labels, shape }).waitForTraining();
  const fromFloats = await kiln.train(config, { features: Float32Array.from(pixels), labels, shape }).waitForTraining();
  assert.ok(fromBytes.finalMetrics.test_accuracy > 0.9, `accuracy ${fromBytes.finalMetrics.test_accuracy}`);
  for (const [key, value] of Object.entries(fromFloats.finalMetrics)) {
    assert.ok(
      Math.abs(fromBytes.finalMetrics[key] - value) < 1e-6,
      `${key}: ${fromBytes.finalMetrics[key]} vs ${value}`,
    );
  }
  const clamped = kiln.train(config, { features: new Uint8ClampedArray(pixels.buffer), labels, shape });
  assert.ok((await clamped.waitForTraining()).finalMetrics.test_accuracy > 0.9);
});

test("a bad config or bad data fails the job with an Error naming the field", async () => {
  const job = kiln.train({ training: { weight_optimization: { learning_rate: -1 } } });
  await assert.rejects(
    job.waitForTraining(),
    (e) => e instanceof Error && /training\.weight_optimization\.learning_rate: must be > 0, got -1/.test(e.message),
  );
  assert.equal(job.status(), "failed");
  assert.match(job.error, /learning_rate: must be > 0/);
  assert.match(job.id, /^trainingjob-/);
  await assert.rejects(kiln.train({ trainig: {} }).waitForTraining(), /did you mean `training`/);
  await assert.rejects(
    kiln.train(undefined, { features: [1, 2], labels: new Int32Array(1), shape: [1, 2] }).waitForTraining(),
    /Float32Array \| Uint8Array/,
  );
  // Never awaited: no unhandled rejection (node --test would fail the file).
  kiln.train({ training: { batch_size: 0 } });
});

test("train() and train({}) run the one default config", async () => {
  const omitted = await kiln.train().waitForTraining();
  const empty = await kiln.train({}).waitForTraining();
  assert.equal(omitted.name, "kiln-run");
  assert.equal(empty.name, omitted.name);
  assert.deepEqual(Object.keys(empty.finalMetrics), Object.keys(omitted.finalMetrics));
  assert.deepEqual(
    empty.history.map((h) => h.metrics),
    omitted.history.map((h) => h.metrics),
  );
});

test("validateConfig checks without training", async () => {
  await kiln.validateConfig({ training: { num_passes: 3, batch_size: 16 } });
  await kiln.validateConfig(undefined);
  await assert.rejects(
    kiln.validateConfig({ training: { batch_size: 0 } }),
    (e) => e instanceof Error && /training\.batch_size/.test(e.message),
  );
  await assert.rejects(kiln.validateConfig("training: [oops"), /line \d+/);
});

test("native-only settings are refused in wasm; other trainers' names are read as Kiln's", async () => {
  await assert.rejects(
    kiln.validateConfig({ tracking: { mlflow: { uri: "http://127.0.0.1:5000" } } }),
    (e) => e instanceof Error && /tracking\.mlflow: MLflow tracking runs natively/.test(e.message),
  );
  const job = kiln.train({ training: { num_epochs: 1 }, tracking: { mlflow: {} } });
  await assert.rejects(
    job.waitForTraining(),
    (e) => e.status === "failed" && /not in the browser or Node's wasm/.test(e.message),
  );
  await assert.rejects(kiln.validateConfig({ output_dir: "runs" }), /output_dir: is for `kiln train`/);
  await assert.rejects(kiln.validateConfig({ gpus: [0] }), /gpus: is for native runs/);
  const aliased = await kiln
    .train({ seed: 4, deterministic: true, training: { num_epochs: 1, lr: 0.01, optimizer: "sgd" } })
    .waitForTraining();
  const named = await kiln
    .train({
      seed: 4,
      deterministic: true,
      training: { num_passes: 1, weight_optimization: { learning_rate: 0.01, optimization_method: "sgd" } },
    })
    .waitForTraining();
  assert.deepEqual(
    aliased.history.map((h) => h.metrics),
    named.history.map((h) => h.metrics),
  );
  await assert.rejects(
    kiln.validateConfig({ training: { epochs: 2, num_epochs: 3 } }),
    /training\.epochs and training\.num_epochs both set `training\.num_passes`/,
  );
});

test("a diverging loss fails the job naming the step", async () => {
  const job = kiln.train({
    training: { num_passes: 3, weight_optimization: { optimization_method: "sgd", learning_rate: 1e12 } },
  });
  await assert.rejects(
    job.waitForTraining(),
    (e) => e.status === "failed" && /the loss became .* at step \d+/.test(e.message),
  );
  assert.equal(job.status(), "failed");
  assert.match(job.error, /at step/);
});

test("unknown model ids and corrupt bytes are clear errors", async () => {
  await assert.rejects(kiln.preloadedModel("0d8e7b1c-0000-4000-8000-000000000000"), /no model with id/);
  await assert.rejects(kiln.preloadedModel("../etc/passwd"), /cannot fetch model|not a valid model id/);
  await assert.rejects(kiln.preloadedModel(new Uint8Array([1, 2, 3])), /not a valid Kiln model/);
  await assert.rejects(
    kiln.preloadedModel(new TextEncoder().encode("KILNMDL1\u0005\u0000\u0000\u0000{bad}")),
    /not a valid Kiln model/,
  );
  assert.equal(await kiln.deleteModel("0d8e7b1c-0000-4000-8000-000000000000"), false);
});

test("export, delete and re-import keep the model working", async () => {
  const info = await kiln.train({ training: { num_passes: 1 } }).waitForTraining();
  const model = await kiln.preloadedModel(info.modelId);
  const bytes = await model.export();
  assert.ok(bytes instanceof Uint8Array && bytes.length > 1000);
  assert.equal(await kiln.deleteModel(info.modelId), true);
  await assert.rejects(kiln.preloadedModel(info.modelId), /no model with id/);
  assert.equal(await kiln.importModel(bytes), info.modelId);
  const again = await kiln.preloadedModel(info.modelId);
  const x = new Float32Array(64).fill(3);
  assert.deepEqual(await again.predict(x), await model.predict(x));
});

test("layers may be bare names and {kind: {params}} in JS configs", async () => {
  const train = (layers) => kiln.train({ training: { num_passes: 2 }, model: { layers } }).waitForTraining();
  const short = await train([{ linear: { out: 32 } }, "relu", "linear"]);
  const tagged = await train([{ type: "linear", out: 32 }, { type: "relu" }, { type: "linear" }]);
  assert.deepEqual(
    short.history.map((h) => h.metrics),
    tagged.history.map((h) => h.metrics),
  );
  await assert.rejects(
    kiln.validateConfig({ model: { layers: ["relu", "rellu"] } }),
    (e) => e instanceof Error && /model\.layers/.test(e.message) && /\[1\]/.test(e.message) && /rellu/.test(e.message),
  );
});

test("the digits file is read only by a job that trains on digits; without it that job fails naming it", async () => {
  // A copy of the installed package without wasm/digits.csv.gz (its own module state and wasm instance).
  const installed = join(dirname(fileURLToPath(packageEntryUrl())), "node_modules", "kiln");
  const digitsFile = join(installed, "wasm", "digits.csv.gz");
  assert.ok(existsSync(digitsFile), "the package ships wasm/digits.csv.gz");
  const copy = join(tempDir("kiln-no-digits-"), "kiln");
  cpSync(installed, copy, { recursive: true, filter: (path) => !path.endsWith("digits.csv.gz") });
  const { Kiln: Bare } = await import(pathToFileURL(join(copy, "cpu.js")).href);
  const bare = await Bare.create({ store: new MemoryStore() });

  const features = new Float32Array(400).map((_, i) => i % 7);
  const labels = new Float32Array(200).map((_, i) => i % 2);
  const inline = await bare
    .train({ training: { num_passes: 1, batch_size: 16 } }, { features, labels, shape: [200, 2] })
    .waitForTraining();
  assert.ok(inline.steps > 0, "a job given its data needs no digits file");

  const job = bare.train({ training: { num_passes: 1 } });
  await assert.rejects(
    job.waitForTraining(),
    (e) =>
      e instanceof Error &&
      /data\.source "digits"/.test(e.message) &&
      e.message.includes(join("kiln", "wasm", "digits.csv.gz")),
  );
  assert.equal(job.status(), "failed");

  // A failed read is tried again by the next job: with the file back, it trains.
  copyFileSync(digitsFile, join(copy, "wasm", "digits.csv.gz"));
  const info = await bare.train({ seed: 3, deterministic: true, training: { num_passes: 1 } }).waitForTraining();
  const reference = await kiln.train({ seed: 3, deterministic: true, training: { num_passes: 1 } }).waitForTraining();
  assert.deepEqual(info.history, reference.history);
});
