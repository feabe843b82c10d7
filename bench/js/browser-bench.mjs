// In one headless Chromium session (Debian's chromium, WebGPU on SwiftShader): Kiln on WebGPU
// and CPU-wasm against TensorFlow.js 4.22's webgpu, wasm and cpu backends, on the digits recipe
// (the same arrays as node-bench.mjs). Each runtime gets a fresh page. One JSON line per runtime.
// Every runtime trains REPEATS fresh models (Kiln: seeds 0…); accuracy is their mean.
//   node browser-bench.mjs [EPOCHS_CPU] [EPOCHS_WEBGPU] [REPEATS]
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { chromium } from "playwright-core";
import { loadDigits } from "./digits.mjs";

const repo = resolve(import.meta.dirname, "../..");
const [epochsCpu = 50, epochsGpu = 5, repeats = 5] = process.argv.slice(2).map(Number);
const { train, test } = loadDigits(`${repo}/crate/data/digits.csv.gz`);
const dataJson = JSON.stringify({
  train: { features: [...train.features], labels: [...train.labels], n: train.n },
  test: { features: [...test.features], labels: [...test.labels], n: test.n },
});
const TYPES = { ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html", ".json": "application/json" };

const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
  if (path === "/bench-data.json") return res.writeHead(200, { "content-type": TYPES[".json"] }).end(dataJson);
  try {
    const body = await readFile(join(repo, path));
    res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${server.address().port}/bench/js/browser.html`;
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
const version = browser.version();

const runs = [
  ["kiln", "webgpu", epochsGpu], ["tfjs", "webgpu", epochsGpu],
  ["kiln", "cpu", epochsCpu], ["tfjs", "wasm", epochsCpu], ["tfjs", "cpu", Math.min(epochsCpu, 20)],
];
const only = process.env.ONLY;
try {
  for (const [lib, backend, epochs] of runs) {
    if (only && !only.split(",").includes(`${lib}-${backend}`)) continue;
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error(`${lib}-${backend}: ${e.message}`));
    await page.goto(url);
    await page.waitForFunction(() => window.benchReady === true);
    const args = [lib, backend, epochs, repeats];
    const result = await page.evaluate(([lib, backend, epochs, repeats]) => window.bench[lib](backend, epochs, repeats), args);
    console.log(JSON.stringify({ ...result, chromium: version }));
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
