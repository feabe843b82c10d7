// Showing a run's results: final metrics, the confusion matrix, numbers and times. Shared by the
// demo page and the server's dashboard.

/** Text made safe to put inside HTML. */
export function escapeHtml(text) {
  return String(text).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );
}

/** 12345 → "12,345". */
export function groupThousands(value) {
  return String(Math.round(value)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Local "2026-11-23 14:05" (no Intl: loading its locale data is a long task on first use). */
export function formatLocalTime(unixMs) {
  const d = new Date(unixMs);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** Seconds as "42 s" or "3 min 5 s". */
export function formatSeconds(s) {
  if (!Number.isFinite(s)) return "–";
  if (s < 60) return `${Math.max(0, Math.round(s))} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/** The final metrics as HTML: the test accuracy large, then every test_/val_ metric. */
export function metricsHtml(metrics) {
  const rows = Object.entries(metrics)
    .filter(([k]) => k.startsWith("test_") || k.startsWith("val_"))
    .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${Number(v).toFixed(4)}</td></tr>`)
    .join("");
  const accuracy =
    metrics.test_accuracy !== undefined
      ? `<p>Test accuracy <span class="big" id="test-accuracy" data-value="${metrics.test_accuracy}">${(100 * metrics.test_accuracy).toFixed(1)}%</span></p>`
      : "";
  return `${accuracy}<table>${rows}</table>`;
}

/** A confusion matrix (rows: true class) as an HTML table; `names` label the classes. */
export function confusionHtml(cm, names = cm.map((_, i) => String(i))) {
  const max = Math.max(1, ...cm.flat());
  const head = `<tr><th></th>${names.map((n) => `<th title="${escapeHtml(n)}">${escapeHtml(n.slice(0, 3))}</th>`).join("")}</tr>`;
  const body = cm
    .map(
      (row, r) =>
        `<tr><th title="${escapeHtml(names[r])}">${escapeHtml(names[r].slice(0, 3))}</th>${row
          .map((v, c) => {
            const alpha = v / max;
            const color =
              r === c ? `rgba(21,128,61,${0.12 + 0.8 * alpha})` : `rgba(185,28,28,${v ? 0.12 + 0.8 * alpha : 0})`;
            return `<td style="background:${color};color:${alpha > 0.55 ? "#fff" : "inherit"}">${v}</td>`;
          })
          .join("")}</tr>`,
    )
    .join("");
  return `<table><caption>Confusion matrix (rows: true class, columns: predicted)</caption>${head}${body}</table>`;
}
