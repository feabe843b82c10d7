// A small line chart on a canvas: several named series, redrawn on demand (cheap enough to run
// on every progress report). The canvas's `data-points` attribute counts the points drawn.

export class LineChart {
  #canvas;
  #series = new Map();
  #frame = 0;

  /** `series`: { name: color } in drawing order. */
  constructor(canvas, series) {
    this.#canvas = canvas;
    for (const [name, color] of Object.entries(series)) this.#series.set(name, { color, points: [] });
    new ResizeObserver(() => this.#schedule()).observe(canvas);
  }

  /** Adds (x, y) to a series; non-finite values are skipped. */
  add(name, x, y) {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    this.#series.get(name)?.points.push([x, y]);
    this.#canvas.dataset.points = String(this.count());
    this.#schedule();
  }

  /** Total points over all series. */
  count() {
    let n = 0;
    for (const s of this.#series.values()) n += s.points.length;
    return n;
  }

  clear() {
    for (const s of this.#series.values()) s.points = [];
    this.#canvas.dataset.points = "0";
    this.#schedule();
  }

  #schedule() {
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.#draw();
    });
  }

  #draw() {
    const canvas = this.#canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth,
      height = canvas.clientHeight;
    if (width === 0 || height === 0) return;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    ctx.font = "10px system-ui, sans-serif";
    ctx.fillStyle = "#6a6f76";
    const all = [...this.#series.values()].flatMap((s) => s.points);
    if (all.length === 0) {
      // Painting text now, not at the first point, keeps the first draw during training cheap.
      ctx.fillText("waiting for data", 8, height / 2);
      return;
    }
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const [x, y] of all) {
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) {
      y1 += Math.abs(y1) * 0.1 || 1;
      y0 -= Math.abs(y0) * 0.1 || 1;
    }
    const pad = { left: 42, right: 8, top: 8, bottom: 18 };
    const px = (x) => pad.left + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
    const py = (y) => height - pad.bottom - ((y - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);

    ctx.strokeStyle = "#e8e3dd";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 3; i++) {
      const y = y0 + ((y1 - y0) * i) / 3;
      ctx.beginPath();
      ctx.moveTo(pad.left, py(y));
      ctx.lineTo(width - pad.right, py(y));
      ctx.stroke();
      ctx.fillText(formatTick(y), 2, py(y) + 3);
    }
    ctx.fillText(`step ${Math.round(x1)}`, width - pad.right - 52, height - 4);

    for (const { color, points } of this.#series.values()) {
      if (points.length === 0) continue;
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(px(x), py(y)) : ctx.lineTo(px(x), py(y))));
      ctx.stroke();
      if (points.length < 30)
        for (const [x, y] of points) {
          ctx.beginPath();
          ctx.arc(px(x), py(y), 2.5, 0, 2 * Math.PI);
          ctx.fill();
        }
    }
  }
}

function formatTick(v) {
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}
