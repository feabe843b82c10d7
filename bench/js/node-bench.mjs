// Node 20: Kiln CPU-wasm vs TensorFlow.js's wasm (and cpu) backend on the digits recipe
// (MLP 64→128→10, Adam 1e-3, batch 32, 20 epochs). Prints one JSON line per runtime.
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { loadDigits, accuracy, median } from "./digits.mjs";

const repo = resolve(import.meta.dirname, "../..");
const EPOCHS = 20, BATCH = 32;
const { train, test } = loadDigits(`${repo}/crate/data/digits.csv.gz`);

async function kilnRun() {
  const { Kiln, MemoryStore } = await import(`${repo}/pkg/kiln.js`);
  const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
  const config = {
    data: { split: [1, 0, 0], normalize: false, shuffle: true },
    model: { preset: "mlp", hidden: [128] },
    training: { num_passes: EPOCHS, batch_size: BATCH, log_every_steps: 45, weight_optimization: { learning_rate: 0.001 } },
    checkpoint: { every_epochs: 0, main_metric: "train_loss" },
  };
  const data = { features: train.features, labels: train.labels, shape: [train.n, 64] };
  // Time to first step: a one-step run reporting after its first step.
  let t0 = performance.now();
  const first = kiln.train({ ...config, training: { ...config.training, num_passes: 1, log_every_steps: 1 } }, data);
  const firstStep = await new Promise((res) => first.onProgress(() => { res(performance.now() - t0); first.cancel(); }));
  await first.waitForTraining().catch(() => {});
  const epochEnds = [];
  t0 = performance.now();
  const job = kiln.train(config, data);
  job.onProgress((p) => { if (p.step % 45 === 0) epochEnds.push(performance.now()); });
  const info = await job.waitForTraining();
  const times = epochEnds.map((t, i) => t - (i === 0 ? t0 : epochEnds[i - 1]));
  const model = await kiln.preloadedModel(info.modelId);
  const probs = await model.predict(test.features);
  const memory = process.memoryUsage().rss;
  return { runtime: "kiln-cpu-wasm", ms_per_epoch: median(times.slice(1)), first_step_ms: firstStep, test_accuracy: accuracy(probs, test.labels), rss_mb: memory / 2 ** 20 };
}

async function tfRun(backend) {
  const tf = await import("@tensorflow/tfjs");
  if (backend === "wasm") {
    const wasm = await import("@tensorflow/tfjs-backend-wasm");
    wasm.setWasmPaths(`${import.meta.dirname}/node_modules/@tensorflow/tfjs-backend-wasm/dist/`);
  }
  await tf.setBackend(backend);
  await tf.ready();
  tf.util.seedrandom?.("7");
  const x = tf.tensor2d(train.features, [train.n, 64]);
  const y = tf.oneHot(tf.tensor1d(train.labels, "int32"), 10);
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [64], units: 128, activation: "relu" }), tf.layers.dense({ units: 10, activation: "softmax" })] });
  model.compile({ optimizer: tf.train.adam(0.001), loss: "categoricalCrossentropy" });
  const t0 = performance.now();
  let firstStep;
  await model.fit(x.slice([0, 0], [BATCH, 64]), y.slice([0, 0], [BATCH, 10]), { batchSize: BATCH, epochs: 1, verbose: 0 });
  firstStep = performance.now() - t0;
  const times = [];
  let last = performance.now();
  await model.fit(x, y, { batchSize: BATCH, epochs: EPOCHS, shuffle: true, verbose: 0, callbacks: { onEpochEnd: () => { const now = performance.now(); times.push(now - last); last = now; } } });
  const probs = await model.predict(tf.tensor2d(test.features, [test.n, 64])).data();
  return { runtime: `tfjs-${backend}`, ms_per_epoch: median(times.slice(1)), first_step_ms: firstStep, test_accuracy: accuracy(probs, test.labels) };
}

const which = process.argv[2] ?? "all";
for (const run of which === "all" ? ["kiln", "wasm", "cpu"] : [which]) {
  const result = run === "kiln" ? await kilnRun() : await tfRun(run);
  console.log(JSON.stringify(result));
}
