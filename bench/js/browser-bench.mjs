// In one headless Chromium session (Debian's chromium, WebGPU on SwiftShader): Kiln on WebGPU
// and CPU-wasm against TensorFlow.js 4.22's webgpu, wasm and cpu backends, on the digits recipe
// (the same arrays as node-bench.mjs). Each runtime gets a fresh page. One JSON line per runtime.
// Every runtime trains REPEATS fresh models (Kiln: seeds 0…); accuracy is their mean.
//   node browser-bench.mjs [EPOCHS_CPU] [EPOCHS_WEBGPU] [REPEATS]
import { launchChromium, packageRoutes, repo, serveRepo } from "./page-server.mjs";
import { loadDigits } from "./digits.mjs";

const [epochsCpu = 50, epochsGpu = 5, repeats = 5] = process.argv.slice(2).map(Number);
const { train, test } = loadDigits(`${repo}/crate/data/digits.csv.gz`);
const dataJson = JSON.stringify({
  train: { features: [...train.features], labels: [...train.labels], n: train.n },
  test: { features: [...test.features], labels: [...test.labels], n: test.n },
});
const routes = { "/bench-data.json": ["application/json", dataJson] };
// PKG=DIR: another build of the package, served at /pkg2 and benched as kiln-*-PKG beside /pkg.
const runsOf = (lib) => (lib === "kiln" && process.env.PKG ? ["/pkg", "/pkg2"] : ["/pkg"]);
if (process.env.PKG) Object.assign(routes, await packageRoutes(process.env.PKG, "/pkg2"));
const { url: base, server } = await serveRepo(routes);
const browser = await launchChromium();
const version = browser.version();

const runs = [
  ["kiln", "webgpu", epochsGpu],
  ["tfjs", "webgpu", epochsGpu],
  ["kiln", "cpu", epochsCpu],
  ["tfjs", "wasm", epochsCpu],
  ["tfjs", "cpu", Math.min(epochsCpu, 20)],
];
const only = process.env.ONLY;
try {
  for (const [lib, backend, epochs] of runs) {
    if (only && !only.split(",").includes(`${lib}-${backend}`)) continue;
    for (const pkg of runsOf(lib)) {
      const page = await browser.newPage();
      page.on("pageerror", (e) => console.error(`${lib}-${backend}: ${e.message}`));
      await page.goto(`${base}/bench/js/browser.html?pkg=${pkg}`);
      await page.waitForFunction(() => window.benchReady === true);
      const args = [lib, backend, epochs, repeats];
      const result = await page.evaluate(
        ([lib, backend, epochs, repeats]) => window.bench[lib](backend, epochs, repeats),
        args,
      );
      if (pkg !== "/pkg") result.runtime += "-PKG";
      console.log(JSON.stringify({ ...result, chromium: version }));
      await page.close();
    }
  }
} finally {
  await browser.close();
  server.close();
}
