// Node 20: Kiln CPU-wasm vs TensorFlow.js's wasm (and cpu) backend on the digits recipe
// (MLP 64→128→10, Adam 1e-3, batch 32, 20 epochs), REPEATS fresh models each (accuracy: their
// mean). Prints one JSON line per runtime.   node node-bench.mjs [all|kiln|wasm|cpu] [REPEATS]
import { resolve } from "node:path";
import { loadDigits } from "./digits.mjs";
import { kilnRun, tfRun } from "./runs.mjs";

const repo = resolve(import.meta.dirname, "../..");
const EPOCHS = 20;
const REPEATS = Number(process.argv[3] ?? 5);
const { train, test } = loadDigits(`${repo}/crate/data/digits.csv.gz`);

async function kiln() {
  // KILN_PKG: another build of the package (a directory like pkg/) to compare against.
  const { Kiln, MemoryStore } = await import(`${process.env.KILN_PKG ?? `${repo}/pkg`}/kiln.js`);
  const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
  const result = await kilnRun({ kiln, runtime: "kiln-cpu-wasm", train, test, epochs: EPOCHS, repeats: REPEATS });
  return { ...result, rss_mb: process.memoryUsage().rss / 2 ** 20 };
}

async function tfjs(backend) {
  const tf = await import("@tensorflow/tfjs");
  if (backend === "wasm") {
    const wasm = await import("@tensorflow/tfjs-backend-wasm");
    wasm.setWasmPaths(`${import.meta.dirname}/node_modules/@tensorflow/tfjs-backend-wasm/dist/`);
  }
  await tf.setBackend(backend);
  await tf.ready();
  return tfRun({ tf, runtime: `tfjs-${backend}`, train, test, epochs: EPOCHS, repeats: REPEATS });
}

const which = process.argv[2] ?? "all";
for (const run of which === "all" ? ["kiln", "wasm", "cpu"] : [which]) {
  console.log(JSON.stringify(run === "kiln" ? await kiln() : await tfjs(run)));
}
