// The dashboard's federations: their rows in the list, and a federation's page
// (`/federations/<id>`) following its events live — every closed round's participants,
// examples, bytes in (the updates received) and out (the global model to each participant),
// and the curves of the global model's validation metrics and the clients' own.
import { LineChart } from "/ui/chart.js";
import { escapeHtml, formatLocalTime, groupThousands } from "/ui/results.js";
import { serverEvents } from "/ui/sse.js";
import { $, api, json } from "/ui/dashboard-api.js";

const FINAL = ["completed", "failed", "cancelled"];

function aggregationText(f) {
  return `${f.aggregation}${f.secureAggregation ? " · secure" : ""}`;
}

/** The rows of the federations table (newest first). */
export async function federationRows() {
  const federations = await json("/v1/federations?order=desc&limit=50");
  return (
    federations
      .map(
        (f) => `<tr data-federation="${escapeHtml(f.id)}">
    <td><a href="/federations/${encodeURIComponent(f.id)}">${escapeHtml(f.id)}</a></td>
    <td><span class="status" data-status="${escapeHtml(f.status)}">${escapeHtml(f.status)}</span></td>
    <td>${Math.min(f.round, f.rounds)}/${f.rounds}</td>
    <td>${escapeHtml(aggregationText(f))}</td>
    <td>${formatLocalTime(f.createdAt)}</td></tr>`,
      )
      .join("") ||
    `<tr><td colspan="5" class="muted">No federations yet: POST /v1/federations (the book's "Federated training").</td></tr>`
  );
}

const kb = (bytes) => `${groupThousands(Math.round(bytes / 1024))} KB`;

/** A federation's page: its state and rounds, live until it ends. */
export async function showFederation(id) {
  for (const card of ["jobs-card", "models-card", "federations-card"]) $(card).hidden = true;
  $("federation-card").hidden = false;
  const path = `/v1/federations/${encodeURIComponent(id)}`;
  const view = await json(path);
  $("federation-title").textContent = `Federation ${view.id}`;
  const modelBytes = (await (await api(`${path}/model`)).arrayBuffer()).byteLength;
  const charts = {
    accuracy: new LineChart($("fed-accuracy"), { train: "#c2410c", val: "#2563eb" }),
    loss: new LineChart($("fed-loss"), { train: "#c2410c", val: "#2563eb" }),
    participants: new LineChart($("fed-participants"), { train: "#7c3aed" }),
  };
  const bytesIn = new Map();
  let status = view.status;
  let round = view.round;
  let members = 0;
  const show = () => {
    $("fed-status").textContent = status;
    $("fed-status").dataset.status = status;
    const done = Math.min(round, view.rounds);
    const open = FINAL.includes(status) ? "" : ` · ${members} joined the open round (at most ${view.clientsPerRound})`;
    $("fed-text").textContent = `round ${done}/${view.rounds}${open} · ${aggregationText(view)}`;
    $("fed-bar").firstElementChild.style.width = `${(100 * done) / view.rounds}%`;
    $("fed-bar").setAttribute("aria-valuenow", String(Math.round((100 * done) / view.rounds)));
  };
  const closed = (r) => {
    const step = r.round + 1;
    const m = r.metrics ?? {};
    charts.accuracy.add("val", step, m.val_accuracy);
    charts.accuracy.add("train", step, m.clients_val_accuracy);
    charts.loss.add("val", step, m.val_loss);
    charts.loss.add("train", step, m.clients_val_loss);
    charts.participants.add("train", step, r.participants);
    const metrics = Object.entries(m)
      .map(([k, v]) => `${escapeHtml(k)} ${Number(v).toFixed(4)}`)
      .join(" · ");
    $("fed-rounds").tBodies[0].insertAdjacentHTML(
      "beforeend",
      `<tr data-round="${r.round}"><td>${r.round}</td><td>${r.participants}</td><td>${groupThousands(r.examples)}</td>
       <td>${kb(bytesIn.get(r.round) ?? 0)}</td><td>${kb(r.participants * modelBytes)}</td><td><small>${metrics}</small></td></tr>`,
    );
    round = r.round + 1;
    members = 0;
  };
  show();
  let last = 0;
  for (;;) {
    try {
      const headers = { accept: "text/event-stream" };
      if (last > 0) headers["last-event-id"] = String(last);
      const response = await api(`${path}/events`, { headers });
      for await (const { id: seq, event, data } of serverEvents(response.body)) {
        last = seq ?? last;
        if (event === "clientJoined") members += 1;
        else if (event === "updateReceived") bytesIn.set(data.round, (bytesIn.get(data.round) ?? 0) + data.bytes);
        else if (event === "roundClosed") closed(data);
        else if (event === "warning") $("fed-text").textContent = data.message;
        else if (event === "status") status = data.status;
        if (event !== "warning") show();
        if (event === "status" && FINAL.includes(data.status)) {
          if (data.error) $("fed-text").textContent = data.error;
          return;
        }
      }
    } catch (e) {
      $("fed-text").textContent = `stream lost (${e.message}); reconnecting…`;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
