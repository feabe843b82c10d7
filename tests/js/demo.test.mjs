// End to end: the demo page served by `make demo`'s server (www/serve.mjs), in Debian's headless
// Chromium driven by playwright-core. Trains on WebGPU and on CPU through the page's controls,
// watches progress and charts move during training, checks the long-task budget, reload
// persistence, drawing + prediction, cancel and the validator's messages. Screenshots go to
// $CARGO_TARGET_DIR/demo-screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { repo, launchChromium } from "./helpers.mjs";

const shots = join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "demo-screenshots");
let server, browser, url;

before(async () => {
  mkdirSync(shots, { recursive: true });
  server = spawn(process.execPath, [join(repo, "www/serve.mjs"), "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  url = await new Promise((resolve, reject) => {
    server.stdout.on("data", (chunk) => {
      const m = /http:\/\/\S+/.exec(String(chunk));
      if (m) resolve(m[0]);
    });
    server.on("exit", (code) => reject(new Error(`the demo server exited with ${code}`)));
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.kill();
});

/**
 * In the page from its first script: long tasks (PerformanceObserver), when the job's status
 * first turned terminal (a MutationObserver records it in the task that set it), and 25 ms
 * snapshots of the UI.
 */
function instrument() {
  window.__longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: "longtask", buffered: true });
  window.__terminalAt = null;
  new MutationObserver(() => {
    const status = document.querySelector("#status")?.dataset.status;
    if (window.__terminalAt === null && ["completed", "failed", "cancelled"].includes(status))
      window.__terminalAt = performance.now();
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-status"] });
  window.__snapshots = [];
  setInterval(() => {
    const status = document.querySelector("#status")?.dataset.status;
    if (!status) return;
    window.__snapshots.push({
      t: performance.now(),
      status,
      step: Number(/step (\d+)\//.exec(document.querySelector("#progress-text").textContent)?.[1] ?? 0),
      lossPoints: Number(document.querySelector("#chart-loss").dataset.points),
      accuracyPoints: Number(document.querySelector("#chart-accuracy").dataset.points),
    });
  }, 25);
}

async function openDemo(context, viewport = { width: 1280, height: 800 }) {
  const page = await context.newPage({ viewport });
  await page.setViewportSize(viewport);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.addInitScript(instrument);
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 120_000 });
  return { page, errors };
}

async function chooseBackend(page, backend) {
  await page.selectOption("#backend", backend);
  await page.waitForSelector("body[data-ready=true]", { timeout: 120_000 });
}

/** Trains through the page's controls; returns what was observed while it ran. */
async function trainThroughPage(page, { passes, timeout }) {
  await page.fill("#passes", String(passes));
  await page.waitForFunction(() => document.querySelector("#validation").textContent === "");
  const startedAt = await page.evaluate(() => {
    window.__snapshots = [];
    window.__terminalAt = null;
    return performance.now();
  });
  const previousJob = await page.getAttribute("#status", "data-job");
  await page.click("#train");
  await page.waitForFunction(
    (previousJob) => {
      const status = document.querySelector("#status");
      return (
        status.dataset.job &&
        status.dataset.job !== previousJob &&
        ["completed", "failed", "cancelled"].includes(status.dataset.status)
      );
    },
    previousJob,
    { timeout, polling: 100 },
  );
  await page.waitForFunction(() => !document.querySelector("#train").disabled);
  const status = await page.getAttribute("#status", "data-status");
  assert.equal(status, "completed", await page.textContent("#progress-text"));
  return page.evaluate(
    (startedAt) => ({
      snapshots: window.__snapshots,
      // While training: from the click until the status turned terminal (the results rendering
      // and model reload that follow are not training).
      longTasks: window.__longTasks.filter(
        (t) => t.start >= startedAt && t.start < (window.__terminalAt ?? Infinity) && t.duration > 100,
      ),
      accuracy: Number(document.querySelector("#test-accuracy")?.dataset.value),
      accuracyText: document.querySelector("#test-accuracy")?.textContent,
      confusionCells: document.querySelectorAll("#confusion td").length,
    }),
    startedAt,
  );
}

/** Progress and both charts must have moved while the status was still "processing". */
function assertLiveUpdates(observed) {
  const during = observed.snapshots.filter((s) => s.status === "processing");
  assert.ok(during.length >= 2, `only ${during.length} snapshots while processing`);
  const steps = new Set(during.map((s) => s.step));
  assert.ok(steps.size >= 2, `the progress text did not advance during training: ${[...steps]}`);
  const points = during.map((s) => s.lossPoints);
  assert.ok(Math.max(...points) > Math.min(...points), "the loss chart gained no points during training");
  assert.ok(Math.max(...points) > 0);
  assert.equal(
    observed.longTasks.length,
    0,
    `main-thread tasks over 100 ms while training: ${JSON.stringify(observed.longTasks)}`,
  );
}

test("WebGPU: the badge names the adapter; digits train to >= 0.9 with live progress and charts", {
  timeout: 900_000,
}, async () => {
  const context = await browser.newContext();
  const { page, errors } = await openDemo(context);
  await chooseBackend(page, "webgpu");
  assert.equal(await page.getAttribute("#backend-badge", "data-kind"), "webgpu");
  const badge = await page.textContent("#backend-badge");
  assert.match(badge, /^WebGPU · .*swiftshader.*BrowserWebGpu/i, badge);

  const observed = await trainThroughPage(page, { passes: 2, timeout: 600_000 });
  assertLiveUpdates(observed);
  assert.ok(observed.accuracy >= 0.9, `test accuracy shown: ${observed.accuracyText}`);
  assert.equal(observed.confusionCells, 100);
  await page.screenshot({ path: join(shots, "desktop-1280x800.png") });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(shots, "phone-390x844.png") });
  await page.screenshot({ path: join(shots, "phone-390x844-full.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

test("CPU: trains, the model survives a reload, loads and predicts a drawn digit", { timeout: 600_000 }, async () => {
  const context = await browser.newContext();
  const { page, errors } = await openDemo(context);
  await chooseBackend(page, "cpu");
  assert.equal(await page.textContent("#backend-badge"), "CPU-wasm");
  const observed = await trainThroughPage(page, { passes: 12, timeout: 300_000 });
  assertLiveUpdates(observed);
  assert.ok(observed.accuracy >= 0.9, `test accuracy shown: ${observed.accuracyText}`);
  await page.waitForSelector("#current-model[data-model-id]", { timeout: 30_000 });
  const modelId = await page.getAttribute("#current-model", "data-model-id");
  assert.ok(modelId, "the trained model became the current model");

  await page.reload();
  await page.waitForSelector("body[data-ready=true]", { timeout: 120_000 });
  await page.waitForSelector(`#model-list li[data-model-id="${modelId}"]`, { timeout: 30_000 });
  await page.click(`#model-list li[data-model-id="${modelId}"] button[data-act=load]`);
  await page.waitForFunction(
    (modelId) => document.querySelector("#current-model").dataset.modelId === modelId,
    modelId,
  );

  // Draw a "1": one vertical stroke down the middle of the pad.
  const box = await page.locator("#pad").boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.15);
  await page.mouse.down();
  for (let i = 1; i <= 20; i++)
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * (0.15 + (0.7 * i) / 20));
  await page.mouse.up();
  await page.waitForFunction(() => document.querySelectorAll("#probs li").length === 10);
  const { best, total } = await page.evaluate(() => ({
    best: document.querySelector("#probs").dataset.best,
    total: [...document.querySelectorAll("#probs li .pct")].reduce((sum, el) => sum + parseFloat(el.textContent), 0),
  }));
  assert.ok(Math.abs(total - 100) < 1.5, `the shown probabilities add up to ${total}%`);
  const seen = await page.evaluate(() =>
    [...document.querySelectorAll("#probs li .pct")].map((e) => e.textContent).join(" "),
  );
  assert.equal(best, "1", `a vertical stroke is read as a 1; probabilities ${seen}`);
  assert.deepEqual(errors, []);
  await context.close();
});

test("Cancel mid-run ends in the cancelled state", { timeout: 300_000 }, async () => {
  const context = await browser.newContext();
  const { page } = await openDemo(context);
  await chooseBackend(page, "cpu");
  await page.fill("#passes", "500");
  await page.waitForFunction(() => document.querySelector("#validation").textContent === "");
  await page.click("#train");
  await page.waitForFunction(() => /step [1-9]/.test(document.querySelector("#progress-text").textContent), null, {
    timeout: 60_000,
  });
  await page.click("#cancel");
  await page.waitForFunction(() => document.querySelector("#status").dataset.status === "cancelled", null, {
    timeout: 60_000,
  });
  assert.equal(await page.isEnabled("#train"), true);
  await context.close();
});

test("a bad hyperparameter shows the config validator's message and does not train", { timeout: 120_000 }, async () => {
  const context = await browser.newContext();
  const { page } = await openDemo(context);
  await page.fill("#lr", "-1");
  await page.waitForFunction(() => document.querySelector("#validation").textContent !== "");
  assert.equal(
    await page.textContent("#validation"),
    "config error: training.weight_optimization.learning_rate: must be > 0, got -1",
  );
  await page.click("#train");
  assert.equal(await page.getAttribute("#status", "data-status"), "idle");
  await page.fill("#lr", "0.01");
  await page.fill("#batch", "0");
  await page.waitForFunction(() => /training\.batch_size/.test(document.querySelector("#validation").textContent));
  await page.fill("#batch", "32");
  await page.waitForFunction(() => document.querySelector("#validation").textContent === "");
  await context.close();
});

test("a CSV file (preview, label column) and Fashion-MNIST train; a model survives download → delete → upload", {
  timeout: 600_000,
}, async () => {
  const context = await browser.newContext({ acceptDownloads: true });
  const { page, errors } = await openDemo(context);
  await chooseBackend(page, "cpu");

  // Two separable classes; the label is the middle column, so it must be chosen.
  const rows = ["x,label,y"];
  for (let i = 0; i < 240; i++) {
    const c = i % 2;
    rows.push(`${(c * 4 + Math.sin(i) * 0.8).toFixed(3)},${c},${(c * -3 + Math.cos(i * 1.7) * 0.8).toFixed(3)}`);
  }
  await page.check("input[name=dataset][value=csv]");
  await page.setInputFiles("#csv-file", {
    name: "clusters.csv",
    mimeType: "text/csv",
    buffer: Buffer.from(rows.join("\n")),
  });
  await page.waitForSelector("#csv-preview table");
  assert.equal(await page.locator("#csv-preview tr").count(), 6);
  assert.equal(await page.isChecked("#csv-header"), true, "the header row is detected");
  await page.selectOption("#csv-label", "label");
  assert.equal(await page.textContent("#csv-preview th.label"), "label");
  await page.fill("#batch", "16");
  const csv = await trainThroughPage(page, { passes: 5, timeout: 120_000 });
  assert.ok(csv.accuracy >= 0.9, `CSV test accuracy ${csv.accuracyText}`);
  assert.equal(csv.confusionCells, 4);

  await page.check("input[name=dataset][value=fashion-mnist]");
  await page.fill("#batch", "128");
  await page.fill("#limit", "3000");
  const fashion = await trainThroughPage(page, { passes: 2, timeout: 300_000 });
  assert.ok(fashion.accuracy >= 0.6, `Fashion-MNIST test accuracy ${fashion.accuracyText}`);
  assert.match(await page.textContent("#confusion"), /Ankle boot|Ank/);

  const modelId = await page.getAttribute("#current-model", "data-model-id");
  const item = `#model-list li[data-model-id="${modelId}"]`;
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click(`${item} button[data-act=download]`),
  ]);
  const file = await download.path();
  await page.click(`${item} button[data-act=delete]`);
  await page.waitForSelector(item, { state: "detached" });
  await page.setInputFiles("#upload", file);
  await page.waitForSelector(item);
  await page.waitForFunction(
    (modelId) => document.querySelector("#current-model").dataset.modelId === modelId,
    modelId,
  );
  assert.deepEqual(errors, []);
  await context.close();
});
