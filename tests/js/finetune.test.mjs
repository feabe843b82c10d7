// Fine-tuning in Node 20 through the packed npm package: a PyTorch MLP's weights (the committed
// safetensors fixture, written by crate/tests/fixtures/make_pytorch_mlp.py) handed over as bytes
// or fetched from a URL give PyTorch's outputs, and then train further.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { installPackage } from "./helpers.mjs";

const fixtures = fileURLToPath(new URL("../../crate/tests/fixtures/", import.meta.url));
const weights = new Uint8Array(readFileSync(`${fixtures}pytorch_mlp.safetensors`));
const pytorch = JSON.parse(readFileSync(`${fixtures}pytorch_mlp.json`, "utf8"));
const map = { fc1: "0", fc2: "2", head: "4" };
const layers = [{ linear: { out: 8 } }, "relu", { linear: { out: 8 } }, "relu", "linear"];

/** 300 samples like the fixture's training data: label (x0 > 0) + (x1 > 0). */
function data() {
  let state = 7;
  const next = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648) * 4 - 2;
  const features = Float32Array.from({ length: 300 * 4 }, next);
  const labels = Int32Array.from({ length: 300 }, (_, i) => (features[4 * i] > 0) + (features[4 * i + 1] > 0));
  return { features, labels, shape: [300, 4] };
}

function softmax(row) {
  const max = Math.max(...row);
  const e = row.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

test("PyTorch weights as bytes or from a URL give PyTorch's outputs (1e-5), then fine-tune", async () => {
  const { Kiln, MemoryStore } = await installPackage();
  const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
  const base = { seed: 1, data: { source: "inline", normalize: false }, training: { num_passes: 1 } };
  // A learning rate too small to move any f32 weight: the saved model is the imported one.
  const still = { ...base.training, weight_optimization: { optimization_method: "sgd", learning_rate: 1e-30 } };
  const url = `data:application/octet-stream;base64,${Buffer.from(weights).toString("base64")}`;
  const expected = pytorch.logits.flatMap(softmax);
  const inputs = Float32Array.from(pytorch.inputs.flat());
  for (const init_from of [
    { bytes: weights, map },
    { url, map },
  ]) {
    const config = { ...base, model: { layers, init_from }, training: still };
    const info = await kiln.train(config, data()).waitForTraining();
    const model = await kiln.preloadedModel(info.modelId);
    const probs = await model.predict(inputs, [pytorch.inputs.length, 4]);
    expected.forEach((p, i) =>
      assert.ok(
        Math.abs(p - probs[i]) < 1e-5,
        `${Object.keys(init_from)[0]} output ${i}: PyTorch ${p} vs Kiln ${probs[i]}`,
      ),
    );
  }
  // Fine-tuning the head on top of frozen imported layers changes the outputs.
  const frozen = [
    { linear: { out: 8 }, trainable: false },
    "relu",
    { linear: { out: 8 }, trainable: false },
    "relu",
    "linear",
  ];
  const tuned = await kiln
    .train(
      {
        ...base,
        model: { layers: frozen, init_from: { bytes: weights, map } },
        training: { num_passes: 3, weight_optimization: { learning_rate: 0.01 } },
      },
      data(),
    )
    .waitForTraining();
  const moved = await (await kiln.preloadedModel(tuned.modelId)).predict(inputs, [pytorch.inputs.length, 4]);
  assert.ok(
    expected.some((p, i) => Math.abs(p - moved[i]) > 1e-3),
    "fine-tuning left the outputs unchanged",
  );
  // Bad inputs fail the job with errors naming what is wrong.
  const fail = (init_from) => kiln.train({ ...base, model: { layers, init_from } }, data()).waitForTraining();
  await assert.rejects(fail({ bytes: weights.slice(0, 50), map }), /not a readable safetensors file/);
  await assert.rejects(fail({ bytes: weights }), /match no layer: .*`fc1\.weight`/);
  await assert.rejects(fail({ bytes: "no", map }), /init_from\.bytes must be a Uint8Array/);
  await assert.rejects(
    fail({ url: "http://127.0.0.1:9/missing.safetensors", map }),
    /model\.init_from\.url: cannot fetch/,
  );
});
