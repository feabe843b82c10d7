// Time to first step in one headless Chromium session: for Kiln and TensorFlow.js on each
// backend, a fresh browser context (empty HTTP and code caches) per run loads only that library
// and measures page start → library ready, train() → first step, and train() → end of the first
// epoch (digits, MLP 64→128→10, batch 32). Medians over RUNS, one JSON line per runtime.
//   node first-step.mjs [RUNS]      ONLY=kiln-cpu,tfjs-wasm   PKG=/tmp/other-pkg (served at /pkg2)
import { countGpuCalls, launchChromium, packageRoutes, repo, serveRepo } from "./page-server.mjs";
import { loadDigits } from "./digits.mjs";
import { median } from "./runs.mjs";

const runs = Number(process.argv[2] ?? 5);
const { train } = loadDigits(`${repo}/crate/data/digits.csv.gz`);
const dataJson = JSON.stringify({ train: { features: [...train.features], labels: [...train.labels], n: train.n } });
const routes = { "/bench-data.json": ["application/json", dataJson] };
// A second package directory (PKG) is served under /pkg2 to compare builds in one session.
if (process.env.PKG) Object.assign(routes, await packageRoutes(process.env.PKG, "/pkg2"));
const { url: base, server } = await serveRepo(routes);
const browser = await launchChromium();
const runtimes = [
  ["kiln", "cpu", "/pkg"],
  ["tfjs", "wasm"],
  ["kiln", "webgpu", "/pkg"],
  ["tfjs", "webgpu"],
];
if (process.env.PKG) runtimes.splice(1, 0, ["kiln", "cpu", "/pkg2"], ["kiln", "webgpu", "/pkg2"]);
const only = process.env.ONLY?.split(",");
try {
  const samples = new Map();
  // Interleaved: run r of every runtime before run r + 1 of any, so the machine's noise is shared.
  for (let r = 0; r < runs; r++) {
    for (const [lib, backend, pkg] of runtimes) {
      const name = `${lib}-${backend}${pkg === "/pkg2" ? "-PKG" : ""}`;
      if (only && !only.includes(name.replace("-PKG", ""))) continue;
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.addInitScript(countGpuCalls);
      await page.goto(`${base}/bench/js/first-step.html?lib=${lib}&backend=${backend}&pkg=${pkg ?? ""}`);
      await page.waitForFunction(() => window.result !== undefined, null, { timeout: 300_000 });
      const result = await page.evaluate(() => window.result);
      await context.close();
      if (result.error) throw new Error(`${name}: ${result.error}`);
      if (!samples.has(name)) samples.set(name, []);
      samples.get(name).push(result);
    }
  }
  for (const [name, results] of samples) {
    const pick = (key) => Math.round(median(results.map((x) => x[key])));
    const gpu = results[0].gpu?.at_first_step
      ? { gpu_at_first_step: results[0].gpu.at_first_step, gpu_at_first_epoch: results[0].gpu.at_first_epoch }
      : {};
    console.log(
      JSON.stringify({
        runtime: name,
        runs: results.length,
        ready_ms: pick("ready_ms"),
        first_step_ms: pick("first_step_ms"),
        ready_plus_first_step_ms: pick("ready_plus_first_step_ms"),
        first_epoch_ms: pick("first_epoch_ms"),
        ...gpu,
        chromium: browser.version(),
      }),
    );
  }
} finally {
  await browser.close();
  server.close();
}
