// The demo page: pick data and hyperparameters, train in a Web Worker (WebGPU or CPU-wasm), watch
// it learn, keep models in IndexedDB, and draw something for the model to classify. Only the
// npm package's public API is used.
import { Kiln } from "kiln";
import { LineChart } from "./chart.js";
import { DrawingPad, paintThumbnail } from "./draw.js";
import { FASHION_CLASSES, fashionAvailable, loadFashionMnist, previewCsv } from "./datasets.js";
import { confusionHtml, escapeHtml, formatLocalTime, formatSeconds, groupThousands, metricsHtml } from "./results.js";

const $ = (id) => document.getElementById(id);
const FASHION_DEFAULT_LIMIT = 10000;

const state = {
  kiln: null,
  opening: null,
  job: null,
  csvText: null,
  model: null, // { model, info }
  lastValidation: "",
};

const charts = {
  loss: new LineChart($("chart-loss"), { train: "#c2410c", val: "#2563eb" }),
  accuracy: new LineChart($("chart-accuracy"), { val: "#2563eb" }),
  grad: new LineChart($("chart-grad"), { train: "#7c3aed" }),
};
const pad = new DrawingPad($("pad"), () => {
  if (state.model) predictDrawing();
});

// ---------- backend ----------

function describeBackend(backend) {
  if (backend.kind === "webgpu") return { kind: "webgpu", text: `WebGPU · ${backend.adapter ?? "adapter"}` };
  const reason = backend.reason ?? "";
  if (/fallback/.test(reason)) return { kind: "cpu", text: "CPU-wasm · auto: WebGPU adapter is software" };
  if (/WebGPU unavailable/.test(reason)) return { kind: "cpu", text: "CPU (WebGPU unavailable)" };
  return { kind: "cpu", text: "CPU-wasm" };
}

function setBadge(kind, text, title = text) {
  const badge = $("backend-badge");
  badge.dataset.kind = kind;
  badge.textContent = text;
  badge.title = title;
}

async function openKiln(backend) {
  setBadge("", "starting…");
  document.body.dataset.ready = "false";
  state.kiln?.terminate?.();
  state.kiln = null;
  const opening = Kiln.create({ backend, worker: true });
  state.opening = opening;
  try {
    const kiln = await opening;
    if (state.opening !== opening) {
      kiln.terminate?.();
      return;
    }
    state.kiln = kiln;
    const { kind, text } = describeBackend(kiln.backend);
    setBadge(kind, text, kiln.backend.reason ?? text);
    document.body.dataset.ready = "true";
    await refreshModels();
    validate();
  } catch (e) {
    if (state.opening !== opening) return;
    setBadge("error", `${backend}: unavailable`, e.message);
    showValidation(`${e.message}`);
  }
}

// ---------- config from the form ----------

function numberField(id) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : raw; // the validator names bad values
}

function dataset() {
  return document.querySelector("input[name=dataset]:checked").value;
}

function buildConfig() {
  const source = dataset();
  const limit = numberField("limit");
  const config = {
    name: `${source}-${$("preset").value}`,
    task: "classification",
    data: { source: source === "digits" ? "digits" : "inline" },
    model: { preset: $("preset").value },
    training: {
      num_passes: numberField("passes"),
      batch_size: numberField("batch"),
      weight_optimization: { optimization_method: $("optimizer").value, learning_rate: numberField("lr") },
    },
    validation: { metrics: ["loss", "accuracy", "f1_macro", "confusion_matrix"] },
  };
  if (source === "digits" && limit !== undefined && limit !== 0) config.data.limit = limit;
  if (source === "csv") {
    config.data.header = $("csv-header").checked;
    const label = $("csv-label").value;
    if (label !== "") config.data.label_column = config.data.header ? label : Number(label);
    if (limit !== undefined && limit !== 0) config.data.limit = limit;
  }
  for (const key of ["num_passes", "batch_size"]) if (config.training[key] === undefined) delete config.training[key];
  if (config.training.weight_optimization.learning_rate === undefined)
    delete config.training.weight_optimization.learning_rate;
  return config;
}

function showValidation(message) {
  $("validation").textContent = message;
}

let validateTimer = 0;
function validate() {
  clearTimeout(validateTimer);
  validateTimer = setTimeout(async () => {
    if (!state.kiln) return;
    try {
      await state.kiln.validateConfig(buildConfig());
      showValidation("");
    } catch (e) {
      showValidation(e.message);
    }
  }, 120);
}

// ---------- data ----------

async function trainingData(config) {
  const source = dataset();
  if (source === "digits") return undefined;
  if (source === "fashion-mnist") {
    const limit = config.data.limit ?? numberField("limit");
    setProgressText("Loading Fashion-MNIST…");
    return loadFashionMnist(typeof limit === "number" && limit > 0 ? limit : FASHION_DEFAULT_LIMIT);
  }
  if (!state.csvText) throw new Error("choose a CSV file first");
  return { csv: state.csvText };
}

function renderCsvPreview() {
  const { table } = previewCsv(state.csvText ?? "");
  const header = $("csv-header").checked;
  const select = $("csv-label");
  const previous = select.value;
  const columns = table[0]?.length ?? 0;
  select.replaceChildren(
    ...Array.from({ length: columns }, (_, i) => {
      const value = header ? table[0][i] : String(i);
      return new Option(header ? table[0][i] : `column ${i}`, value);
    }),
  );
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  else if (columns > 0) select.selectedIndex = columns - 1;
  const labelIndex = select.selectedIndex;
  const rows = table.map((cells, r) => {
    const tag = header && r === 0 ? "th" : "td";
    return `<tr>${cells.map((c, i) => `<${tag}${i === labelIndex ? ' class="label"' : ""}>${escapeHtml(c)}</${tag}>`).join("")}</tr>`;
  });
  $("csv-preview").innerHTML = table.length
    ? `<table>${rows.join("")}</table>`
    : "<p class=muted>The file is empty.</p>";
}

// ---------- training ----------

function setStatus(status) {
  const el = $("status");
  el.dataset.status = status;
  el.textContent = status;
}

function setProgressText(text) {
  $("progress-text").textContent = text;
}

/** 12345.6 → "12,346" (no Intl: its first use loads locale data, a long task mid-training). */
function setTraining(running) {
  $("train").disabled = running;
  $("cancel").disabled = !running;
  $("backend").disabled = running;
}

async function train() {
  if (!state.kiln) return;
  const config = buildConfig();
  try {
    await state.kiln.validateConfig(config);
  } catch (e) {
    showValidation(e.message);
    return;
  }
  showValidation("");
  setTraining(true);
  setStatus("queued");
  for (const chart of Object.values(charts)) chart.clear();
  $("final-metrics").innerHTML = '<p class="muted">Training…</p>';
  $("confusion").replaceChildren();
  setBar(0);
  let data;
  try {
    data = await trainingData(config);
  } catch (e) {
    setStatus("failed");
    setProgressText(e.message);
    setTraining(false);
    return;
  }
  const job = state.kiln.train(config, data);
  state.job = job;
  $("status").dataset.job = job.id;
  setProgressText(`Job ${job.id} queued…`);
  job.onProgress((p) => {
    setStatus(job.status());
    setBar((100 * p.step) / Math.max(1, p.totalSteps));
    setProgressText(
      `Epoch ${p.epoch}/${p.epochs} · step ${p.step}/${p.totalSteps} · ${groupThousands(p.samplesPerSec)} samples/s · ETA ${formatSeconds(p.etaSeconds)}`,
    );
    charts.loss.add("train", p.step, p.loss);
    if (p.gradNorm != null) charts.grad.add("train", p.step, p.gradNorm);
  });
  (async () => {
    for await (const event of job.events()) {
      if (event.event !== "evaluated") continue;
      charts.loss.add("val", event.step, event.metrics.val_loss);
      charts.accuracy.add("val", event.step, event.metrics.val_accuracy);
    }
  })();
  try {
    const info = await job.waitForTraining();
    setTraining(false);
    setStatus("completed");
    setBar(100);
    setProgressText(
      `Done: ${info.epochsRun} passes, ${info.steps} steps in ${formatSeconds(info.durationSecs)}${info.stoppedEarly ? " (stopped early)" : ""}.`,
    );
    showResults(info, config);
    await refreshModels();
    await loadModel(info.modelId);
  } catch (e) {
    setStatus(job.status() === "cancelled" ? "cancelled" : "failed");
    setProgressText(e.message);
    $("final-metrics").innerHTML =
      `<p class="muted">${escapeHtml(job.status() === "cancelled" ? "Cancelled." : "The run failed.")}</p>`;
  } finally {
    if (state.job === job) state.job = null;
    setTraining(false);
  }
}

function setBar(percent) {
  const bar = $("progress-bar");
  bar.setAttribute("aria-valuenow", String(Math.round(percent)));
  bar.firstElementChild.style.width = `${Math.min(100, Math.max(0, percent))}%`;
}

function classNames(count, config) {
  if (count === 10 && (config?.name ?? "").startsWith("fashion-mnist")) return FASHION_CLASSES;
  return Array.from({ length: count }, (_, i) => String(i));
}

function showResults(info, config) {
  $("final-metrics").innerHTML = metricsHtml(info.finalMetrics);
  const cm = info.confusionMatrix;
  if (cm) $("confusion").innerHTML = confusionHtml(cm, classNames(cm.length, config));
}

// ---------- saved models ----------

async function refreshModels() {
  if (!state.kiln) return;
  let models;
  try {
    models = await state.kiln.listModels();
  } catch (e) {
    $("model-list").innerHTML = `<li class="muted">Cannot list models: ${escapeHtml(e.message)}</li>`;
    return;
  }
  models.sort((a, b) => b.createdUnixMs - a.createdUnixMs);
  if (models.length === 0) {
    $("model-list").innerHTML = '<li class="muted">No saved models yet.</li>';
    return;
  }
  $("model-list").replaceChildren(
    ...models.map((m) => {
      const li = document.createElement("li");
      li.dataset.modelId = m.modelId;
      if (state.model?.info.modelId === m.modelId) li.classList.add("current");
      const accuracy =
        m.metrics.test_accuracy !== undefined ? ` · test accuracy ${(100 * m.metrics.test_accuracy).toFixed(1)}%` : "";
      li.innerHTML = `<span class="name">${escapeHtml(m.name)}</span>
      <span class="meta">${formatLocalTime(m.createdUnixMs)} · input ${m.inputShape.join("×")}${accuracy}</span>
      <span class="actions"><button data-act="load">Load</button><button data-act="download">Download</button><button data-act="delete">Delete</button></span>`;
      li.querySelector("[data-act=load]").onclick = () => loadModel(m.modelId);
      li.querySelector("[data-act=download]").onclick = () => downloadModel(m);
      li.querySelector("[data-act=delete]").onclick = () => deleteModel(m.modelId);
      return li;
    }),
  );
}

async function loadModel(modelId) {
  try {
    const model = await state.kiln.preloadedModel(modelId);
    state.model = { model, info: { ...model.info, modelId } };
    const size = model.info.inputShape.reduce((a, b) => a * b, 1);
    const drawable = size === 64 || size === 784;
    $("current-model").textContent =
      `Current model: ${model.info.name} (${modelId.slice(0, 8)}…)${drawable ? "" : " — drawing works with 8×8 digits or 28×28 image models"}`;
    $("current-model").dataset.modelId = modelId;
    $("predict").disabled = !drawable;
    await refreshModels();
    if (pad.dirty && !pad.active && drawable) await predictDrawing();
  } catch (e) {
    $("current-model").textContent = `Cannot load the model: ${e.message}`;
  }
}

async function downloadModel(m) {
  try {
    const bytes = await (await state.kiln.preloadedModel(m.modelId)).export();
    const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    const a = Object.assign(document.createElement("a"), {
      href: url,
      download: `${m.name}-${m.modelId.slice(0, 8)}.kiln`,
    });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (e) {
    $("current-model").textContent = `Cannot export the model: ${e.message}`;
  }
}

async function deleteModel(modelId) {
  await state.kiln.deleteModel(modelId);
  if (state.model?.info.modelId === modelId) {
    state.model = null;
    $("predict").disabled = true;
    $("current-model").textContent = "No model loaded: train one or load a saved one.";
    delete $("current-model").dataset.modelId;
  }
  await refreshModels();
}

async function uploadModel(file) {
  try {
    const modelId = await state.kiln.importModel(new Uint8Array(await file.arrayBuffer()));
    await refreshModels();
    await loadModel(modelId);
  } catch (e) {
    $("current-model").textContent = `Cannot import ${file.name}: ${e.message}`;
  }
}

// ---------- drawing ----------

let predictionSeq = 0;

async function predictDrawing() {
  if (!state.model) return;
  const seq = ++predictionSeq;
  const { model, info } = state.model;
  const size = info.inputShape.reduce((a, b) => a * b, 1);
  const features = size === 64 ? pad.digits8x8() : size === 784 ? pad.grey28x28() : null;
  if (!features) return;
  paintThumbnail($("thumb"), features, size === 64 ? 8 : 28, size === 64 ? 16 : 255);
  try {
    const probs = await model.predict(features, [1, ...info.inputShape]);
    if (seq !== predictionSeq) return; // a newer drawing's prediction wins
    const names =
      size === 784 && info.numOutputs === 10
        ? FASHION_CLASSES
        : Array.from({ length: probs.length }, (_, i) => String(i));
    const best = probs.indexOf(Math.max(...probs));
    $("probs").dataset.best = String(best);
    $("probs").replaceChildren(
      ...[...probs].map((p, i) => {
        const li = document.createElement("li");
        if (i === best) li.classList.add("top");
        li.innerHTML = `<span>${escapeHtml(names[i])}</span><span class="p"><span style="width:${(100 * p).toFixed(1)}%"></span></span><span class="pct">${(100 * p).toFixed(1)}%</span>`;
        return li;
      }),
    );
  } catch (e) {
    $("probs").textContent = `Prediction failed: ${e.message}`;
  }
}

// ---------- wiring ----------

$("backend").addEventListener("change", (e) => openKiln(e.target.value));
$("train").addEventListener("click", train);
$("cancel").addEventListener("click", () => {
  state.job?.cancel();
  setProgressText("Cancelling…");
});
for (const id of ["preset", "optimizer", "passes", "batch", "lr", "limit", "csv-header", "csv-label"]) {
  $(id).addEventListener("input", validate);
  $(id).addEventListener("change", validate);
}
for (const radio of document.querySelectorAll("input[name=dataset]")) {
  radio.addEventListener("change", () => {
    $("csv-panel").hidden = dataset() !== "csv";
    if (dataset() === "fashion-mnist" && $("batch").value === "32") $("batch").value = "128";
    validate();
  });
}
$("csv-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  state.csvText = await file.text();
  $("csv-header").checked = previewCsv(state.csvText).looksLikeHeader;
  renderCsvPreview();
  validate();
});
$("csv-header").addEventListener("change", renderCsvPreview);
$("csv-label").addEventListener("change", renderCsvPreview);
$("upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) uploadModel(file);
  e.target.value = "";
});
$("clear").addEventListener("click", () => {
  pad.clear();
  $("probs").replaceChildren();
  delete $("probs").dataset.best;
});
$("predict").addEventListener("click", predictDrawing);

fashionAvailable().then((ok) => {
  $("dataset-fashion").disabled = !ok;
  $("fashion-note").textContent = ok
    ? "(28×28, from the server)"
    : "(not on this server: install dataset-fashion-mnist)";
});
openKiln($("backend").value);
