// pkg/types.d.ts (the config, event, result and model-summary types) is generated from the Rust
// types; this fails when the committed file is not what `make types` writes today.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { generateTypes } from "../../scripts/gen-types.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const kilnBin = process.env.KILN_BIN ?? `${process.env.CARGO_TARGET_DIR ?? `${root}target`}/debug/kiln`;

test("pkg/types.d.ts is generated from the current Rust types", async () => {
  const fresh = await generateTypes(kilnBin);
  const committed = readFileSync(`${root}pkg/types.d.ts`, "utf8");
  assert.ok(committed === fresh, "pkg/types.d.ts is stale: run `make types` and commit it");
  for (const name of [
    "TrainConfig",
    "TrainEvent",
    "TrainRunInfo",
    "Progress",
    "HistoryEntry",
    "ModelInfo",
    "LayerSpec",
  ]) {
    assert.match(fresh, new RegExp(`export (type|interface) ${name}\\b`), name);
  }
});

test("kiln.d.ts takes its config, event and result types from types.d.ts", () => {
  const handWritten = readFileSync(`${root}pkg/kiln.d.ts`, "utf8");
  assert.match(handWritten, /from "\.\/types\.js"/);
  for (const name of ["TrainConfig", "TrainEvent", "TrainRunInfo", "Progress", "LayerSpec"]) {
    assert.doesNotMatch(
      handWritten,
      new RegExp(`export (type|interface) ${name}\\b`),
      `${name} is written by hand again`,
    );
  }
});

test("the package's declarations type-check a consumer (tsc --strict)", async () => {
  const { mkdtempSync, writeFileSync, symlinkSync, mkdirSync } = await import("node:fs");
  const { execFileSync } = await import("node:child_process");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(`${tmpdir()}/kiln-types-`);
  mkdirSync(`${dir}/node_modules`);
  symlinkSync(`${root}pkg`, `${dir}/node_modules/kiln`);
  writeFileSync(
    `${dir}/app.ts`,
    `
import { Kiln, type TrainConfig, type TrainEvent, type TrainRunInfo, type ModelInfo } from "kiln";
import { Kiln as CpuKiln } from "kiln/cpu";
const config: TrainConfig = {
  name: "typed",
  model: { layers: [{ linear: { out: 64 }, trainable: false }, "relu", { type: "dropout", prob: 0.1 }, { type: "linear", trainable: true }] },
  training: { num_passes: 2, weight_optimization: { optimization_method: "adamw", learning_rate: 1e-3 } },
  tracking: { mlflow: { experiment: "typed" } },
  run: { seed: 3 },
  validation: { every: 1, metrics: ["loss", "f1_macro"] },
};
async function main(): Promise<number> {
  const kiln = await Kiln.create({ backend: "cpu" });
  const job = kiln.train(config);
  for await (const event of job.events()) {
    const e: TrainEvent = event;
    if (e.event === "progress") console.log(e.loss, e.samplesPerSec);
    if (e.event === "evaluated") console.log(e.metrics["val_loss"]);
  }
  const info: TrainRunInfo = await job.waitForTraining();
  const models: ModelInfo[] = await kiln.listModels();
  const model = await kiln.preloadedModel(info.modelId);
  await (await CpuKiln.create()).validateConfig(config);
  return info.finalMetrics["test_accuracy"] + models.length + model.info.numOutputs;
}
void main;
const aliased: TrainConfig = { training: { lr: 0.01, num_epochs: 3, precision: 16 } };
void aliased;
// @ts-expect-error: trainable is a boolean
const badTrainable: TrainConfig = { model: { layers: [{ linear: { out: 4 }, trainable: "no" }] } };
void badTrainable;
// @ts-expect-error: an unknown layer kind is not a LayerSpec
const wrong: TrainConfig = { model: { layers: [{ type: "rellu" }] } };
void wrong;
`,
  );
  writeFileSync(
    `${dir}/tsconfig.json`,
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2022",
        lib: ["es2022", "dom"],
        skipLibCheck: false,
      },
      files: ["app.ts"],
    }),
  );
  const tsc = `${root}tests/js/node_modules/typescript/bin/tsc`;
  try {
    execFileSync(process.execPath, [tsc, "-p", dir], { encoding: "utf8", stdio: "pipe" });
  } catch (error) {
    assert.fail(`tsc failed:\n${error.stdout}${error.stderr}`);
  }
});
