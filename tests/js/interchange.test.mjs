// Models move between the native CLI and the npm package (Node, CPU wasm) in both directions
// and predict the same outputs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { installPackage, kiln, tempDir } from "./helpers.mjs";

const { Kiln, MemoryStore } = await installPackage();
const js = await Kiln.create({ backend: "cpu", store: new MemoryStore() });

// Three raw digit images (pixel values 0-16) as CSV rows and as one Float32Array.
const rows = [3, 5, 11].map((k) => Array.from({ length: 64 }, (_, i) => (i * k) % 17));
const csv = rows.map((r) => r.join(",")).join("\n") + "\n";
const features = new Float32Array(rows.flat());

function cliPredictions(file) {
  return file
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => line.split(",").slice(1).map(Number));
}

function assertClose(native, wasm) {
  assert.equal(native.length * native[0].length, wasm.length);
  native
    .flat()
    .forEach((p, i) => assert.ok(Math.abs(p - wasm[i]) < 1e-4, `output ${i}: native ${p} vs wasm ${wasm[i]}`));
}

test("a model trained by the native CLI loads and predicts the same in Node", async () => {
  const dir = tempDir("kiln-interchange-");
  const store = join(dir, "store");
  writeFileSync(join(dir, "c.yaml"), "training: {num_passes: 2}\n");
  const info = JSON.parse(kiln(["--store", store, "train", join(dir, "c.yaml"), "--out", join(dir, "run"), "--json"]));
  const exported = join(dir, "model.kiln");
  kiln(["--store", store, "models", "export", info.modelId, exported]);
  writeFileSync(join(dir, "in.csv"), csv);
  kiln([
    "--store",
    store,
    "predict",
    "--model",
    exported,
    "--input",
    join(dir, "in.csv"),
    "--output",
    join(dir, "out.csv"),
  ]);
  const native = cliPredictions(readFileSync(join(dir, "out.csv"), "utf8"));

  const model = await js.preloadedModel(new Uint8Array(readFileSync(exported)));
  assert.equal(model.modelId, info.modelId);
  assertClose(native, await model.predict(features, [3, 1, 8, 8]));
});

test("a model trained in Node imports into the CLI and predicts the same", async () => {
  const dir = tempDir("kiln-interchange-");
  const info = await js.train({ training: { num_passes: 2 } }).waitForTraining();
  const model = await js.preloadedModel(info.modelId);
  const file = join(dir, "from-node.kiln");
  writeFileSync(file, await model.export());
  const store = join(dir, "store");
  assert.equal(kiln(["--store", store, "models", "import", file]).trim(), info.modelId);
  writeFileSync(join(dir, "in.csv"), csv);
  kiln([
    "--store",
    store,
    "predict",
    "--model",
    info.modelId,
    "--input",
    join(dir, "in.csv"),
    "--output",
    join(dir, "out.csv"),
  ]);
  assertClose(cliPredictions(readFileSync(join(dir, "out.csv"), "utf8")), await model.predict(features));
});
