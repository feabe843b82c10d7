// The digits benchmark runs, shared by the Node and the in-Chromium benches: the same recipe
// (MLP 64→128→10, ReLU, Adam 1e-3, batch 32) on the same arrays for Kiln and TensorFlow.js.
// Environment-free: the caller passes the library objects and the data.

export const BATCH = 32;

/** Kiln: time to first step (a one-step run), then `epochs` epochs; wasm memory after epoch 1 and the last. */
export async function kilnRun({ kiln, runtime, train, test, epochs }) {
  const stepsPerEpoch = Math.ceil(train.n / BATCH);
  const config = {
    data: { split: [1, 0, 0], normalize: false, shuffle: true },
    model: { preset: "mlp", hidden: [128] },
    training: { num_passes: epochs, batch_size: BATCH, log_every_steps: stepsPerEpoch, weight_optimization: { learning_rate: 0.001 } },
    checkpoint: { every_epochs: 0, main_metric: "train_loss" },
  };
  const data = { features: train.features, labels: train.labels, shape: [train.n, 64] };
  let t0 = performance.now();
  const first = kiln.train({ ...config, training: { ...config.training, num_passes: 1, log_every_steps: 1 } }, data);
  const firstStep = await new Promise((res) => first.onProgress(() => { res(performance.now() - t0); first.cancel(); }));
  await first.waitForTraining().catch(() => {});

  const epochEnds = [];
  const memory = {};
  t0 = performance.now();
  const job = kiln.train(config, data);
  job.onProgress((p) => {
    if (p.step % stepsPerEpoch !== 0) return;
    epochEnds.push(performance.now());
    const epoch = p.step / stepsPerEpoch;
    if (epoch === 1 || epoch === epochs) kiln.memoryBytes().then((bytes) => { memory[`epoch${epoch}`] = bytes; });
  });
  const info = await job.waitForTraining();
  const times = epochEnds.map((t, i) => t - (i === 0 ? t0 : epochEnds[i - 1]));
  const model = await kiln.preloadedModel(info.modelId);
  const probs = await model.predict(test.features);
  await kiln.deleteModel(info.modelId);
  return {
    runtime, epochs, ms_per_epoch: median(times.slice(1)), first_step_ms: firstStep,
    test_accuracy: accuracy(probs, test.labels),
    wasm_memory_mb_epoch1: memory.epoch1 / 2 ** 20, [`wasm_memory_mb_epoch${epochs}`]: memory[`epoch${epochs}`] / 2 ** 20,
  };
}

/** TensorFlow.js on `backend` (already set and ready): time to first step, then `epochs` epochs. */
export async function tfRun({ tf, runtime, train, test, epochs }) {
  const x = tf.tensor2d(train.features, [train.n, 64]);
  const y = tf.oneHot(tf.tensor1d(train.labels, "int32"), 10);
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [64], units: 128, activation: "relu" }), tf.layers.dense({ units: 10, activation: "softmax" })] });
  model.compile({ optimizer: tf.train.adam(0.001), loss: "categoricalCrossentropy" });
  const t0 = performance.now();
  await model.fit(x.slice([0, 0], [BATCH, 64]), y.slice([0, 0], [BATCH, 10]), { batchSize: BATCH, epochs: 1, verbose: 0 });
  const firstStep = performance.now() - t0;
  const times = [];
  let last = performance.now();
  await model.fit(x, y, { batchSize: BATCH, epochs, shuffle: true, verbose: 0, callbacks: { onEpochEnd: () => { const now = performance.now(); times.push(now - last); last = now; } } });
  const probs = await model.predict(tf.tensor2d(test.features, [test.n, 64])).data();
  return { runtime, epochs, ms_per_epoch: median(times.slice(1)), first_step_ms: firstStep, test_accuracy: accuracy(probs, test.labels) };
}

/** Top-1 accuracy of row-major class probabilities. */
export function accuracy(probs, labels, classes = 10) {
  let correct = 0;
  for (let r = 0; r < labels.length; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (probs[r * classes + c] > probs[r * classes + best]) best = c;
    if (best === labels[r]) correct++;
  }
  return correct / labels.length;
}

export const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
