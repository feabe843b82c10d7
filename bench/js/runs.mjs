// The digits benchmark runs, shared by the Node and the in-Chromium benches: the same recipe
// (MLP 64→128→10, ReLU, Adam 1e-3, batch 32) on the same arrays for Kiln and TensorFlow.js.
// Environment-free: the caller passes the library objects and the data.

export const BATCH = 32;

/**
 * Kiln: time to first step (a one-step run), then `repeats` trainings of `epochs` epochs (seeds
 * 0, 1, …); ms/epoch is the median epoch after the first over all runs, accuracy the mean over
 * runs; wasm memory after epoch 1 and the last epoch of the first run.
 */
export async function kilnRun({ kiln, runtime, train, test, epochs, repeats = 1 }) {
  const stepsPerEpoch = Math.ceil(train.n / BATCH);
  const config = {
    seed: 0,
    data: { split: [1, 0, 0], normalize: false, shuffle: true },
    model: { preset: "mlp", hidden: [128] },
    training: {
      num_passes: epochs,
      batch_size: BATCH,
      log_every_steps: stepsPerEpoch,
      weight_optimization: { learning_rate: 0.001 },
    },
    checkpoint: { every_epochs: 0, main_metric: "train_loss" },
  };
  const data = { features: train.features, labels: train.labels, shape: [train.n, 64] };
  let t0 = performance.now();
  const first = kiln.train({ ...config, training: { ...config.training, num_passes: 1, log_every_steps: 1 } }, data);
  const firstStep = await new Promise((res) =>
    first.onProgress(() => {
      res(performance.now() - t0);
      first.cancel();
    }),
  );
  await first.waitForTraining().catch(() => {});

  const memory = {};
  const times = [];
  const accuracies = [];
  for (let seed = 0; seed < repeats; seed++) {
    const epochEnds = [];
    t0 = performance.now();
    const job = kiln.train({ ...config, seed }, data);
    job.onProgress((p) => {
      if (p.step % stepsPerEpoch !== 0) return;
      epochEnds.push(performance.now());
      const epoch = p.step / stepsPerEpoch;
      if (seed === 0 && (epoch === 1 || epoch === epochs))
        kiln.memoryBytes().then((bytes) => {
          memory[`epoch${epoch}`] = bytes;
        });
    });
    const info = await job.waitForTraining();
    times.push(...epochEnds.map((t, i) => t - (i === 0 ? t0 : epochEnds[i - 1])).slice(1));
    const model = await kiln.preloadedModel(info.modelId);
    accuracies.push(accuracy(await model.predict(test.features), test.labels));
    await kiln.deleteModel(info.modelId);
  }
  return {
    runtime,
    epochs,
    repeats,
    ms_per_epoch: median(times),
    first_step_ms: firstStep,
    ...accuracySummary(accuracies),
    wasm_memory_mb_epoch1: memory.epoch1 / 2 ** 20,
    [`wasm_memory_mb_epoch${epochs}`]: memory[`epoch${epochs}`] / 2 ** 20,
  };
}

/**
 * TensorFlow.js on `backend` (already set and ready): time to first step (a one-batch fit of a
 * fresh model), then `repeats` fresh models trained for `epochs` epochs, summarised like `kilnRun`.
 */
export async function tfRun({ tf, runtime, train, test, epochs, repeats = 1 }) {
  const x = tf.tensor2d(train.features, [train.n, 64]);
  const y = tf.oneHot(tf.tensor1d(train.labels, "int32"), 10);
  const build = () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [64], units: 128, activation: "relu" }),
        tf.layers.dense({ units: 10, activation: "softmax" }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.001), loss: "categoricalCrossentropy" });
    return model;
  };
  const t0 = performance.now();
  await build().fit(x.slice([0, 0], [BATCH, 64]), y.slice([0, 0], [BATCH, 10]), {
    batchSize: BATCH,
    epochs: 1,
    verbose: 0,
  });
  const firstStep = performance.now() - t0;
  const times = [];
  const accuracies = [];
  for (let r = 0; r < repeats; r++) {
    const model = build();
    const epochTimes = [];
    let last = performance.now();
    await model.fit(x, y, {
      batchSize: BATCH,
      epochs,
      shuffle: true,
      verbose: 0,
      callbacks: {
        onEpochEnd: () => {
          const now = performance.now();
          epochTimes.push(now - last);
          last = now;
        },
      },
    });
    times.push(...epochTimes.slice(1));
    const probs = await model.predict(tf.tensor2d(test.features, [test.n, 64])).data();
    accuracies.push(accuracy(probs, test.labels));
  }
  return {
    runtime,
    epochs,
    repeats,
    ms_per_epoch: median(times),
    first_step_ms: firstStep,
    ...accuracySummary(accuracies),
  };
}

/** Mean test accuracy over runs, with the lowest and highest. */
function accuracySummary(accuracies) {
  const mean = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
  return {
    test_accuracy: mean,
    test_accuracy_min: Math.min(...accuracies),
    test_accuracy_max: Math.max(...accuracies),
  };
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

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
