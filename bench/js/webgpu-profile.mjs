// Where a Kiln WebGPU step spends its time on this machine's adapter: the first step of a fresh
// job (time, compute pipelines created, WGSL compiled: the first case in a page starts cold),
// time, dispatches and queue submits per step for several batch sizes and optimizers
// (dispatch-bound if the time does not grow with the batch), and,
// with CPU_PROFILE=N, the N functions with the most main-thread self time during the measured
// steps (CDP sampling profiler; build the package with a wasm name section to read them).
//   [CASES=adam:32,sgd:32] [PKG=/pkg] [CPU_PROFILE=40] node webgpu-profile.mjs [STEPS]
import { countGpuCalls, launchChromium, repo, serveRepo } from "./page-server.mjs";
import { loadDigits } from "./digits.mjs";

const steps = Number(process.argv[2] ?? 20);
const { train } = loadDigits(`${repo}/crate/data/digits.csv.gz`);
const dataJson = JSON.stringify({ features: [...train.features], labels: [...train.labels], n: train.n });
const { url, server } = await serveRepo({
  "/data.json": ["application/json", dataJson],
  "/": ["text/html", "<!doctype html><title>profile</title>"],
});
const browser = await launchChromium();
// PKG: where the page imports the package from (a build with a name section gives a readable profile).
const pkg = process.env.PKG ?? "/pkg";
const cases = (process.env.CASES ?? "adam:32,adam:128,adam:512,sgd:32").split(",").map((c) => c.split(":"));
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.error(`page: ${m.text()}`));
  // Counts what Kiln asks of WebGPU (pipelines, WGSL, dispatches, submits).
  await page.addInitScript(countGpuCalls);
  await page.goto(`${url}/`);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  const busy = async () =>
    Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((m) => [m.name, m.value]));
  const topN = Number(process.env.CPU_PROFILE ?? 0);
  if (topN) {
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
    await page.exposeFunction("startProfile", () => cdp.send("Profiler.start"));
  }
  for (const [optimizer, batch] of cases) {
    const before = await busy();
    const wall0 = Date.now();
    const result = await page.evaluate(
      async ([optimizer, batch, steps, pkgPath]) => {
        const { Kiln, MemoryStore } = await import(`${pkgPath}/kiln.js`);
        const d = await (await fetch("/data.json")).json();
        const data = { features: Float32Array.from(d.features), labels: Int32Array.from(d.labels), shape: [d.n, 64] };
        const kiln = await Kiln.create({ backend: "webgpu", store: new MemoryStore() });
        const config = (passes, log) => ({
          data: { split: [1, 0, 0], normalize: false, shuffle: true },
          model: { preset: "mlp", hidden: [128] },
          training: {
            num_passes: passes,
            batch_size: batch,
            log_every_steps: log,
            weight_optimization: { optimization_method: optimizer, learning_rate: 0.001 },
          },
          checkpoint: { every_epochs: 0, main_metric: "train_loss" },
        });
        const snapshot = () => ({ ...globalThis.gpuCalls });
        const since = (from) => Object.fromEntries(Object.entries(snapshot()).map(([k, v]) => [k, v - from[k]]));
        const from = snapshot();
        const t0 = performance.now();
        const first = kiln.train(config(1, 1), data);
        const firstStepMs = await new Promise((res) =>
          first.onProgress(() => {
            res(Math.round(performance.now() - t0));
            first.cancel();
          }),
        );
        await first.waitForTraining().catch(() => {});
        const firstStep = { ms: firstStepMs, ...since(from) };
        // Warm-up: one full epoch compiles every pipeline (the last, partial batch included).
        await kiln.train(config(1, 1000), data).waitForTraining();
        await globalThis.startProfile?.();
        const marks = [];
        let windowStart;
        const job = kiln.train(config(100, steps), data);
        const windows = Number(globalThis.WINDOWS ?? 6);
        let windowCalls;
        job.onProgress((p) => {
          marks.push([p.step, performance.now()]);
          if (marks.length === 1) windowStart = snapshot();
          if (marks.length === windows + 1) {
            windowCalls = since(windowStart);
            job.cancel();
          }
        });
        await job.waitForTraining().catch(() => {});
        const perWindow = marks.slice(1).map(([s, t], i) => [s, Math.round((t - marks[i][1]) / (s - marks[i][0]))]);
        const sorted = perWindow.map((w) => w[1]).sort((a, b) => a - b);
        const stepsMeasured = marks[marks.length - 1][0] - marks[0][0];
        return {
          firstStep,
          msPerStepMedian: sorted[Math.floor(sorted.length / 2)],
          perWindow: perWindow.map((w) => w.join("@")).join(" "),
          dispatchesPerStep: windowCalls.dispatches / stepsMeasured,
          submitsPerStep: windowCalls.submits / stepsMeasured,
        };
      },
      [optimizer, Number(batch), steps, pkg],
    );
    const after = await busy();
    const wall = (Date.now() - wall0) / 1000;
    const mainThread = {
      wallS: wall,
      taskS: after.TaskDuration - before.TaskDuration,
      scriptS: after.ScriptDuration - before.ScriptDuration,
    };
    console.log(JSON.stringify({ optimizer, batch: Number(batch), steps, ...result, mainThread }));
    if (topN) printProfile((await cdp.send("Profiler.stop")).profile, topN);
  }
} finally {
  await browser.close();
  server.close();
}

/** Prints the functions with the most self time (share of all samples). */
function printProfile(profile, topN) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const counts = new Map();
  for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
  for (const [id, count] of counts) {
    const f = byId.get(id).callFrame;
    const name = `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}`;
    self.set(name, (self.get(name) ?? 0) + count);
  }
  const total = profile.samples.length;
  for (const [name, count] of [...self].sort((a, b) => b[1] - a[1]).slice(0, topN)) {
    console.log(`${((100 * count) / total).toFixed(1).padStart(5)}%  ${name}`);
  }
}
