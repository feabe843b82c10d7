// Kiln CPU-wasm's linear memory over a long run in Node: trains the digits MLP for EPOCHS
// epochs (default 300), twice in one instance, and prints kiln.memoryBytes() at a few epochs.
// Usage (after `make pkg`): node memory-check.mjs [EPOCHS]
import { resolve } from "node:path";
import { loadDigits } from "./digits.mjs";

const repo = resolve(import.meta.dirname, "../..");
const epochs = Number(process.argv[2] ?? 300);
const { train } = loadDigits(`${repo}/crate/data/digits.csv.gz`);
const { Kiln, MemoryStore } = await import(`${repo}/pkg/kiln.js`);
const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
const stepsPerEpoch = Math.ceil(train.n / 32);
const marks = new Set([1, 10, 50, 100, 200, 300, 600, 1000].filter((e) => e <= epochs));
const data = { features: train.features, labels: train.labels, shape: [train.n, 64] };
const config = {
  seed: 0,
  data: { split: [1, 0, 0] },
  model: { preset: "mlp", hidden: [128] },
  training: { num_passes: epochs, batch_size: 32, log_every_steps: stepsPerEpoch },
  checkpoint: { every_epochs: 0, main_metric: "train_loss" },
};
for (const run of [1, 2]) {
  const job = kiln.train(config, data);
  const readings = [];
  job.onProgress((p) => {
    const epoch = p.step / stepsPerEpoch;
    if (marks.has(epoch)) {
      kiln.memoryBytes().then((bytes) => readings.push(`epoch ${epoch}: ${(bytes / 2 ** 20).toFixed(2)} MB`));
    }
  });
  await job.waitForTraining();
  console.log(`run ${run}: ${readings.join(", ")}`);
}
