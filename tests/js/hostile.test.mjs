// Hostile input through the npm package in Node 20 (CPU wasm): the issue-11 reproductions and a
// seeded, bounded fuzz of the JS entry points (train data shapes, Model.predict inputs,
// importModel bytes). Every call must settle with a real Error (never a wasm trap, never a
// pending Promise) and the same instance must still train afterwards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { installPackage, packageEntryUrl, tempDir } from "./helpers.mjs";

const { Kiln, MemoryStore, DirectoryStore, assertModelId } = await installPackage();

/** A small deterministic PRNG (mulberry32): the same cases on every run. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Settles `f()` within `ms`; returns the thrown/rejected value or undefined. */
async function settle(f, ms = 20000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle in ${ms} ms`)), ms);
  });
  try {
    await Promise.race([(async () => f())(), timeout]);
    return undefined;
  } catch (e) {
    if (/did not settle/.test(e?.message)) throw e;
    return e;
  } finally {
    clearTimeout(timer);
  }
}

/** A refusal must be a plain Error with a message, never a wasm trap. */
function assertCleanError(e, what) {
  if (e === undefined) return;
  assert.ok(e instanceof Error, `${what}: rejected with a non-Error ${e}`);
  assert.ok(!(e instanceof WebAssembly.RuntimeError), `${what}: wasm trap: ${e.message}`);
  assert.ok(!/unreachable|panicked|recursively acquire/.test(e.message), `${what}: ${e.message}`);
  assert.ok(e.message.length > 10, `${what}: empty message`);
}

async function stillTrains(kiln) {
  const info = await kiln.train({ fast_dev_run: true }).waitForTraining();
  assert.ok(info.modelId);
  return info;
}

async function tamperedHeaderModel(kiln, edit) {
  const info = await stillTrains(kiln);
  const bytes = await (await kiln.preloadedModel(info.modelId)).export();
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const len = view.getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + len)));
  edit(header);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(12 + json.length + bytes.length - 12 - len);
  out.set(bytes.subarray(0, 8));
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  out.set(bytes.subarray(12 + len), 12 + json.length);
  return out;
}

test("importModel never writes outside a DirectoryStore, whatever the header says", async () => {
  const root = tempDir("kiln-hostile-");
  const dir = join(root, "a", "b", "store");
  const kiln = await Kiln.create({ backend: "cpu", store: new DirectoryStore(dir) });
  const bytes = await tamperedHeaderModel(kiln, (h) => {
    h.model_id = "../../escape";
  });
  const e = await settle(() => kiln.importModel(bytes));
  assertCleanError(e, "importModel");
  assert.match(e.message, /model_id/);
  assert.ok(!existsSync(join(root, "a", "escape.kiln")));
  assert.deepEqual(
    readdirSync(dir).filter((f) => !f.endsWith(".kiln")),
    [],
  );
  // The stores refuse path-like ids themselves too.
  await assert.rejects(new DirectoryStore(dir).put("../x", new Uint8Array(1)), TypeError);
  await assert.rejects(new MemoryStore().get("a/b"), TypeError);
  assert.throws(() => assertModelId(""), TypeError);
});

test("importModel refuses an id already stored unless force", async () => {
  const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
  const info = await stillTrains(kiln);
  const bytes = await (await kiln.preloadedModel(info.modelId)).export();
  await assert.rejects(kiln.importModel(bytes), /already in the store/);
  assert.equal(await kiln.importModel(bytes, { force: true }), info.modelId);
});

test("preloadedModel strings are an id, a URL, or a clear error", async () => {
  const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
  await assert.rejects(kiln.preloadedModel("no-such-model"), /no model with id `no-such-model`/);
  await assert.rejects(kiln.preloadedModel("model.kiln"), /neither a model id .* nor a URL/);
  await assert.rejects(kiln.preloadedModel("../models/x.kiln"), /cannot fetch model/);
});

test("the issue's reproductions are errors, and the instance keeps working", async () => {
  const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
  const cases = [
    [
      "overflowing shape",
      () =>
        kiln
          .train(
            { data: { source: "inline" } },
            { features: new Float32Array(0), labels: new Int32Array(65536), shape: [65536, 65536, 1] },
          )
          .waitForTraining(),
      /data.shape|limit/,
    ],
    [
      "huge hidden layer",
      () => kiln.train({ model: { hidden: [100000000] } }).waitForTraining(),
      /model.layers\[0\].*limit/,
    ],
    ["deep config", () => kiln.validateConfig("[".repeat(100000)), /maxConfigDepth/],
    ["deep object", () => kiln.validateConfig(JSON.parse('{"a":'.repeat(500) + "1" + "}".repeat(500))), /config/],
    [
      "nan learning rate",
      () => kiln.validateConfig("training:\n  weight_optimization:\n    learning_rate: .nan\n"),
      /learning_rate: must be a finite number, got \.nan/,
    ],
    [
      "label_column -1",
      () => kiln.validateConfig({ data: { label_column: -1 } }),
      /data.label_column: must be a column name/,
    ],
  ];
  for (const [what, call, message] of cases) {
    const started = Date.now();
    const e = await settle(call);
    assert.ok(e, `${what}: accepted`);
    assertCleanError(e, what);
    assert.match(e.message, message, what);
    assert.ok(Date.now() - started < 10000, `${what}: took ${Date.now() - started} ms`);
  }
  const huge = await tamperedHeaderModel(kiln, (h) => {
    h.config.model.hidden = [100000000];
  });
  assertCleanError(await settle(() => kiln.preloadedModel(huge)), "huge header");
  const badNorm = await tamperedHeaderModel(kiln, (h) => {
    h.normalization.std = h.normalization.std.map(() => 0);
  });
  const e = await settle(() => kiln.preloadedModel(badNorm));
  assert.match(e.message, /normalization.std/);
  await stillTrains(kiln);
});

test("limits can be set per instance and name their key", async () => {
  const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore(), limits: { maxParameters: 100 } });
  await assert.rejects(
    kiln.train({ fast_dev_run: true }).waitForTraining(),
    /over the limit of 100 parameters.*maxParameters/,
  );
  await assert.rejects(Kiln.create({ backend: "cpu", limits: { maxParamters: 5 } }), /unknown field/);
  await Kiln.create({ backend: "cpu", store: new MemoryStore(), limits: {} }); // back to the defaults
});

test("seeded fuzz of train, predict and importModel: clean errors only, the instance survives", async () => {
  const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
  const info = await stillTrains(kiln);
  const model = await kiln.preloadedModel(info.modelId);
  const good = await model.export();
  const random = rng(0x6b696c6e);
  const pick = (xs) => xs[Math.floor(random() * xs.length)];
  const dims = [0, 1, 2, 3, 8, 64, 65536, 2 ** 24, 2 ** 32 - 1, -1, 1.5, NaN];
  let cases = 0;
  for (let i = 0; i < 120; i++) {
    const shape = Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(dims));
    const n = Math.floor(random() * 200);
    const features = pick([
      new Float32Array(n).map(() => random() * 10),
      new Uint8Array(n),
      new Float32Array(n).fill(NaN),
      [1, 2, 3],
      "x",
      null,
    ]);
    const labels = pick([
      new Int32Array(Math.max(0, Math.min(64, shape[0] | 0))).map(() => Math.floor(random() * 3) - 1),
      new Float32Array(2),
      undefined,
    ]);
    const config = pick([
      { fast_dev_run: true, data: { source: "inline" } },
      { data: { source: "inline" }, training: { batch_size: pick(dims) } },
    ]);
    assertCleanError(
      await settle(() => kiln.train(config, { features, labels, shape }).waitForTraining()),
      `train ${JSON.stringify(shape)}`,
    );
    cases++;
  }
  for (let i = 0; i < 120; i++) {
    const n = pick([0, 1, 63, 64, 65, 128, 6400]);
    const features = pick([
      new Float32Array(n).map(() => random() * 16),
      new Float32Array(n).fill(Infinity),
      new Uint8Array(n),
      [1, 2],
    ]);
    const shape = pick([undefined, [n / 64, 64], [1, 8, 8], [n], [-1, 64], ["a"], [2 ** 32, 2 ** 32], null]);
    assertCleanError(await settle(() => model.predict(features, shape)), `predict ${n} ${JSON.stringify(shape)}`);
    cases++;
  }
  for (let i = 0; i < 150; i++) {
    const bytes = new Uint8Array(good);
    const flips = 1 + Math.floor(random() * 6);
    for (let f = 0; f < flips; f++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    const cut = random() < 0.3 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes;
    assertCleanError(await settle(() => kiln.importModel(cut, { force: true })), "importModel");
    assertCleanError(await settle(() => kiln.preloadedModel(cut)), "preloadedModel bytes");
    cases++;
  }
  assert.equal(cases, 390);
  await stillTrains(kiln);
});

/**
 * The recovery scenario runs as a plain Node program (no test runner, which installs its own
 * uncaughtException listener): it must survive a trap inside a running job, fail that job with
 * the panic message, and carry on on a fresh wasm instance.
 */
const PANIC_SCENARIO = `
import { Kiln, MemoryStore } from ENTRY;
const out = {};
const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore(), limits: { maxLayers: 64 } });
const before = await kiln.train({ fast_dev_run: true }).waitForTraining();
const oldModel = await kiln.preloadedModel(before.modelId);
const rows = new Float32Array(64);
out.expected = [...await oldModel.predict(rows)];
await kiln._injectPanic("job");
const job = kiln.train({ fast_dev_run: true });
try { await job.waitForTraining(); out.failure = null; } catch (e) {
  out.failure = { message: e.message, trap: e instanceof WebAssembly.RuntimeError, isError: e instanceof Error };
}
out.failedStatus = job.status();
const after = await kiln.train({ fast_dev_run: true }).waitForTraining();
out.ids = (await kiln.listModels()).map((m) => m.modelId);
out.before = before.modelId;
out.after = after.modelId;
out.again = [...await (await kiln.preloadedModel(before.modelId)).predict(rows)];
try { await oldModel.predict(rows); out.stale = null; } catch (e) { out.stale = e.message; }
try { await kiln.validateConfig({ model: { hidden: new Array(100).fill(4) } }); out.limited = null; } catch (e) { out.limited = e.message; }
try { await kiln._injectPanic("now"); out.sync = null; } catch (e) {
  out.sync = { message: e.message, trap: e instanceof WebAssembly.RuntimeError };
}
out.afterSync = Boolean((await kiln.train({ fast_dev_run: true }).waitForTraining()).modelId);
console.log(JSON.stringify(out));
`;

test("a panic inside wasm fails its job with the message, and Kiln carries on on a fresh instance", async () => {
  const script = join(tempDir("kiln-panic-"), "scenario.mjs");
  writeFileSync(script, PANIC_SCENARIO.replace("ENTRY", JSON.stringify(packageEntryUrl())));
  const run = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 120000 });
  assert.equal(run.status, 0, `the process did not survive: ${run.stderr.slice(-2000)}`);
  const out = JSON.parse(run.stdout.trim().split("\n").at(-1));
  // The job that panicked failed with the panic message (a real Error, not a trap).
  assert.ok(out.failure?.isError && !out.failure.trap, JSON.stringify(out.failure));
  assert.match(out.failure.message, /internal error: Kiln panicked .*injected fault/s);
  assert.equal(out.failedStatus, "failed");
  // The same Kiln trained again; the store kept both models; the old model reloads and predicts the same.
  assert.ok(out.ids.includes(out.before) && out.ids.includes(out.after), JSON.stringify(out.ids));
  assert.equal(out.again.length, out.expected.length);
  out.again.forEach((v, i) => assert.ok(Math.abs(v - out.expected[i]) < 1e-6));
  // Objects of the crashed instance refuse clearly instead of reading freed memory.
  assert.match(out.stale, /belonged to a wasm instance that crashed .*injected fault.*load it again/s);
  // The limits given at create still hold on the new instance.
  assert.match(out.limited, /limit/);
  // A panic in a synchronous call is an Error too, and the next call works.
  assert.ok(out.sync && !out.sync.trap, JSON.stringify(out.sync));
  assert.match(out.sync.message, /injected fault/);
  assert.equal(out.afterSync, true);
  // console_error_panic_hook still reports the panic on stderr.
  assert.match(run.stderr, /injected fault/);
});
