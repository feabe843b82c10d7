// Precision is fixed per device for the life of the wasm instance (burn settles a device's float
// type once). Its own file, so node --test gives it a fresh process and a fresh device.
import { test } from "node:test";
import assert from "node:assert/strict";
import { installPackage } from "./helpers.mjs";

const { Kiln, MemoryStore } = await installPackage();
const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
const config = (precision) => ({ training: { num_passes: 1, precision } });

test("f16 jobs train, and a second f16 job on the same device still trains", async () => {
  for (let run = 0; run < 2; run++) {
    const info = await kiln.train(config("f16")).waitForTraining();
    assert.ok(info.finalMetrics.test_accuracy > 0.5, `run ${run}: accuracy ${info.finalMetrics.test_accuracy}`);
  }
});

test("an f32 job after f16 fails naming training.precision instead of silently training in f16", async () => {
  const job = kiln.train(config("f32"));
  await assert.rejects(
    job.waitForTraining(),
    /training\.precision: f32 was asked for, but an earlier f16 job switched this device/,
  );
  assert.equal(job.status(), "failed");
});
