// The npm package in a web app's production build: Vite bundles a tiny app that imports
// `kiln/cpu` (and one that imports `kiln`), and the built app trains in headless Chromium. A
// CPU-only app's output holds the CPU wasm and nothing of the WebGPU build.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { mkdirSync, readdirSync, readFileSync, writeFileSync, statSync } from "node:fs";
import { dirname, extname, join, normalize } from "node:path";
import { installPackage, packageEntryUrl, launchChromium } from "./helpers.mjs";
import { fileURLToPath } from "node:url";

const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };
let browser;

before(async () => {
  await installPackage();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

/** Every file under `dir`, relative to it. */
function filesUnder(dir, prefix = "") {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path, `${prefix}${name}/`) : [`${prefix}${name}`];
  });
}

/** Builds an app (in the consumer project that has the installed package) importing `specifier`. */
async function buildApp(name, specifier) {
  const { build } = await import("vite");
  const project = dirname(fileURLToPath(packageEntryUrl()));
  const root = join(project, name);
  mkdirSync(root, { recursive: true });
  writeFileSync(
    join(root, "index.html"),
    `<!doctype html><title>${name}</title><script type="module" src="./main.js"></script>`,
  );
  writeFileSync(
    join(root, "main.js"),
    `
import { Kiln, MemoryStore, loadedBuilds } from "${specifier}";
const kiln = await Kiln.create({ backend: "cpu", store: new MemoryStore() });
const info = await kiln.train({ seed: 1, training: { num_passes: 3 } }).waitForTraining();
window.result = { accuracy: info.finalMetrics.test_accuracy, build: kiln.backend.build, loaded: loadedBuilds() };
`,
  );
  await build({ root, logLevel: "error", build: { outDir: join(root, "dist"), target: "es2022" } });
  return join(root, "dist");
}

/** Serves `dir` on loopback and runs its index.html in Chromium: `window.result` and the paths fetched. */
async function runApp(dir) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    const file = join(dir, path === "/" ? "index.html" : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const context = await browser.newContext();
  const requested = [];
  context.on("request", (request) => requested.push(new URL(request.url()).pathname));
  try {
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page
      .waitForFunction(() => window.result !== undefined, null, { timeout: 300_000 })
      .catch((e) => {
        throw new Error(`the built app did not finish: ${errors.join("; ") || e.message}`);
      });
    return { ...(await page.evaluate(() => window.result)), requested };
  } finally {
    await context.close();
    server.close();
  }
}

/** Runs a built app: it trains on the CPU build, and nothing of the WebGPU build is fetched. */
async function assertTrainsOnTheCpuBuildOnly(dist) {
  const result = await runApp(dist);
  assert.equal(result.build, "cpu");
  assert.deepEqual(result.loaded, ["cpu"]);
  assert.deepEqual(
    result.requested.filter((p) => p.includes("webgpu")),
    [],
    "a CPU run fetched the WebGPU build",
  );
  assert.ok(
    result.requested.some((p) => /kiln-cpu.*\.wasm$/.test(p)),
    result.requested.join(" "),
  );
  assert.ok(
    result.requested.some((p) => /digits.*\.gz$/.test(p)),
    `the digits job fetched the data set: ${result.requested.join(" ")}`,
  );
  assert.ok(result.accuracy >= 0.85, `accuracy ${result.accuracy}`);
}

test("a Vite production build of a kiln/cpu app holds only the CPU wasm and trains in Chromium", {
  timeout: 600_000,
}, async () => {
  const dist = await buildApp("cpu-app", "kiln/cpu");
  const files = filesUnder(dist);
  const wasm = files.filter((f) => f.endsWith(".wasm"));
  assert.equal(wasm.length, 1, `wasm files: ${wasm.join(", ")}`);
  assert.match(wasm[0], /kiln-cpu/);
  const cpuWasm = readFileSync(join(import.meta.dirname, "../../pkg/wasm/kiln-cpu_bg.wasm"));
  assert.equal(statSync(join(dist, wasm[0])).size, cpuWasm.length);
  assert.deepEqual(
    files.filter((f) => f.includes("webgpu")),
    [],
  );
  await assertTrainsOnTheCpuBuildOnly(dist);
});

test("a Vite build of a kiln app keeps the WebGPU build as a lazy chunk a CPU run never loads", {
  timeout: 600_000,
}, async () => {
  const dist = await buildApp("full-app", "kiln");
  const wasm = filesUnder(dist)
    .filter((f) => f.endsWith(".wasm"))
    .sort();
  assert.equal(wasm.length, 2, `wasm files: ${wasm.join(", ")}`);
  assert.ok(wasm.some((f) => f.includes("kiln-cpu")) && wasm.some((f) => f.includes("kiln-webgpu")), wasm.join(", "));
  await assertTrainsOnTheCpuBuildOnly(dist);
});
