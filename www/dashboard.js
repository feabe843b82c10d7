// The dashboard `kiln serve` serves at `/`: the job list, each job's page (`/jobs/<id>`, its
// trackingUrl) with live progress and curves, final metrics and confusion matrix, the
// federations (each one's page at `/federations/<id>`), and the models with download. Charts, results and the event-stream reader are the demo page's and the npm
// package's own modules. The token, when the server needs one, is asked once per tab.
import { LineChart } from "/ui/chart.js";
import { confusionHtml, escapeHtml, formatLocalTime, formatSeconds, groupThousands, metricsHtml } from "/ui/results.js";
import { serverEvents } from "/ui/sse.js";
import { $, api, json } from "/ui/dashboard-api.js";
import { federationRows, showFederation } from "/ui/federation-view.js";

async function showServer() {
  const health = await (await fetch("/v1/health")).json();
  $("server").textContent = `kiln ${health.version} · ${health.backend}`;
  $("server").dataset.kind = health.backend;
}

// ---------- lists ----------

function tagsText(tags) {
  return Object.entries(tags ?? {})
    .map(([k, v]) => `${k}:${v}`)
    .join(" ");
}

/** The newest jobs page by page: the first page on every refresh, older ones on "Older jobs". */
const JOBS_PAGE = 50;
const olderPages = [];
let olderCursor = null;

async function jobsPage(after) {
  const query = new URLSearchParams({ order: "desc", limit: String(JOBS_PAGE) });
  if (after) query.set("after", after);
  const response = await api(`/v1/jobs?${query}`);
  return { jobs: await response.json(), next: response.headers.get("x-next-cursor") };
}

async function showOlderJobs() {
  const page = await jobsPage(olderCursor);
  olderPages.push(...page.jobs);
  olderCursor = page.next;
  await refreshLists();
}

async function refreshLists() {
  const first = await jobsPage(null);
  if (olderPages.length === 0) olderCursor = first.next;
  const jobs = [...first.jobs, ...olderPages.filter((o) => !first.jobs.some((j) => j.id === o.id))];
  $("older-jobs").hidden = !olderCursor;
  $("jobs").tBodies[0].innerHTML =
    jobs
      .map(
        (j) => `<tr data-job="${escapeHtml(j.id)}">
    <td><a href="/jobs/${encodeURIComponent(j.id)}">${escapeHtml(j.result?.name ?? j.id)}</a><br><small>${escapeHtml(j.id)}</small></td>
    <td><span class="status" data-status="${escapeHtml(j.status)}">${escapeHtml(j.status)}</span></td>
    <td>${escapeHtml(tagsText(j.tags))}</td>
    <td>${formatLocalTime(j.createdAt)}</td>
    <td>${j.result?.finalMetrics?.test_accuracy !== undefined ? `${(100 * j.result.finalMetrics.test_accuracy).toFixed(1)}%` : ""}</td></tr>`,
      )
      .join("") ||
    `<tr><td colspan="5" class="muted">No jobs yet: POST /v1/jobs (see the book's "The server" chapter).</td></tr>`;
  $("federations").tBodies[0].innerHTML = await federationRows();
  const models = (await json("/v1/models")).sort((a, b) => b.createdUnixMs - a.createdUnixMs);
  $("models").tBodies[0].innerHTML =
    models
      .map(
        (m) => `<tr data-model="${escapeHtml(m.modelId)}">
    <td><small>${escapeHtml(m.modelId)}</small></td><td>${escapeHtml(m.name)}</td><td>${escapeHtml(m.task)}</td>
    <td>${Object.entries(m.metrics)
      .filter(([k]) => k.startsWith("test_"))
      .map(([k, v]) => `${escapeHtml(k)} ${Number(v).toFixed(4)}`)
      .join("<br>")}</td>
    <td><button class="download" data-model-id="${escapeHtml(m.modelId)}">Download</button></td></tr>`,
      )
      .join("") || `<tr><td colspan="5" class="muted">No models yet.</td></tr>`;
}

/** Downloads a model with the token (a plain link could not send it). */
async function download(modelId) {
  const blob = await (await api(`/v1/models/${encodeURIComponent(modelId)}`)).blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${modelId}.kiln`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// ---------- one job ----------

async function showJob(id) {
  $("jobs-card").hidden = true;
  $("models-card").hidden = true;
  $("job-card").hidden = false;
  const job = await json(`/v1/jobs/${encodeURIComponent(id)}`);
  $("job-title").textContent = `Job ${job.id}`;
  $("job-links").innerHTML = `<a href="/">← all jobs</a>`;
  const charts = {
    loss: new LineChart($("chart-loss"), { train: "#c2410c", val: "#2563eb" }),
    accuracy: new LineChart($("chart-accuracy"), { val: "#2563eb" }),
    grad: new LineChart($("chart-grad"), { train: "#7c3aed" }),
  };
  const setStatus = (status) => {
    $("status").textContent = status;
    $("status").dataset.status = status;
  };
  setStatus(job.status);
  let last = 0;
  for (;;) {
    let response;
    try {
      const headers = { accept: "text/event-stream" };
      if (last > 0) headers["last-event-id"] = String(last);
      response = await api(`/v1/jobs/${encodeURIComponent(id)}/events`, { headers });
      for await (const { id: seq, event, data } of serverEvents(response.body)) {
        last = seq ?? last;
        if (event === "progress" && data.epoch !== undefined) {
          $("progress-bar").firstElementChild.style.width = `${(100 * data.step) / Math.max(1, data.totalSteps)}%`;
          $("progress-bar").setAttribute(
            "aria-valuenow",
            String(Math.round((100 * data.step) / Math.max(1, data.totalSteps))),
          );
          $("progress-text").textContent =
            `epoch ${data.epoch}/${data.epochs} · step ${data.step}/${data.totalSteps} · ${groupThousands(data.samplesPerSec)} samples/s · ETA ${formatSeconds(data.etaSeconds)}`;
          charts.loss.add("train", data.step, data.loss);
          if (data.gradNorm != null) charts.grad.add("train", data.step, data.gradNorm);
        } else if (event === "evaluated") {
          charts.loss.add("val", data.step, data.metrics.val_loss);
          charts.accuracy.add("val", data.step, data.metrics.val_accuracy);
        } else if (event === "interrupted") {
          $("progress-text").textContent = data.reason;
        } else if (event === "status") {
          setStatus(data.status);
          if (data.status === "completed" && data.result) {
            const r = data.result;
            $("progress-text").textContent =
              `${r.epochsRun} passes, ${r.steps} steps in ${formatSeconds(r.durationSecs)} · model ${r.modelId}`;
            $("final-metrics").innerHTML = metricsHtml(r.finalMetrics);
            if (r.confusionMatrix) $("confusion").innerHTML = confusionHtml(r.confusionMatrix);
            $("job-links").innerHTML =
              `<a href="/">← all jobs</a> · <button class="download" data-model-id="${escapeHtml(r.modelId)}">Download the model</button>`;
          } else if (data.error) {
            $("progress-text").textContent = data.error;
          }
          if (["completed", "failed", "cancelled"].includes(data.status)) return;
        }
      }
    } catch (e) {
      $("progress-text").textContent = `stream lost (${e.message}); reconnecting…`;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.download");
  if (button) download(button.dataset.modelId).catch((e) => alert(e.message));
  if (event.target.id === "older-jobs") showOlderJobs().catch((e) => alert(e.message));
});

showServer().catch((e) => {
  $("server").textContent = e.message;
  $("server").dataset.kind = "error";
});
const match = location.pathname.match(/^\/jobs\/([^/]+)$/);
const federation = location.pathname.match(/^\/federations\/([^/]+)$/);
if (federation) {
  showFederation(decodeURIComponent(federation[1])).catch((e) => {
    $("fed-text").textContent = e.message;
  });
} else if (match) {
  showJob(decodeURIComponent(match[1])).catch((e) => {
    $("progress-text").textContent = e.message;
  });
} else {
  const tick = () =>
    refreshLists().catch((e) => {
      $("jobs").tBodies[0].innerHTML = `<tr><td colspan="5">${escapeHtml(e.message)}</td></tr>`;
    });
  tick();
  setInterval(tick, 2000);
}
