// The drawing pad and the conversion of a drawing into a model's input: the 8×8 digits (a
// 32×32 bitmap counted in 4×4 blocks, values 0–16, as the UCI data set was made) or a 28×28
// grey image (Fashion-MNIST style, white on black, 0–255).

export class DrawingPad {
  #canvas;
  #ctx;
  #drawing = false;
  #last = null;
  /** Whether anything was drawn since the last clear. */
  dirty = false;

  /** Whether a stroke is in progress. */
  get active() {
    return this.#drawing;
  }

  constructor(canvas, onStroke) {
    this.#canvas = canvas;
    this.#ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.clear();
    const at = (e) => {
      const r = canvas.getBoundingClientRect();
      return [((e.clientX - r.left) * canvas.width) / r.width, ((e.clientY - r.top) * canvas.height) / r.height];
    };
    canvas.addEventListener("pointerdown", (e) => {
      this.#drawing = true;
      this.#last = at(e);
      canvas.setPointerCapture(e.pointerId);
      this.#line(this.#last, this.#last);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!this.#drawing) return;
      const p = at(e);
      this.#line(this.#last, p);
      this.#last = p;
    });
    const end = () => {
      if (this.#drawing) {
        this.#drawing = false;
        onStroke?.();
      }
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }

  #line(a, b) {
    const ctx = this.#ctx;
    ctx.strokeStyle = "#000";
    ctx.lineWidth = this.#canvas.width / 7;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...a);
    ctx.lineTo(...b);
    ctx.stroke();
    this.dirty = true;
  }

  clear() {
    this.#ctx.fillStyle = "#fff";
    this.#ctx.fillRect(0, 0, this.#canvas.width, this.#canvas.height);
    this.dirty = false;
  }

  /** Ink coverage (0–1) on a `size`×`size` grid, the drawing's bounding box centred and scaled to fit `box`. */
  #coverage(size, box) {
    const { width, height } = this.#canvas;
    const pixels = this.#ctx.getImageData(0, 0, width, height).data;
    let [x0, y0, x1, y1] = [width, height, -1, -1];
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        if (pixels[(y * width + x) * 4] < 128) {
          x0 = Math.min(x0, x);
          x1 = Math.max(x1, x);
          y0 = Math.min(y0, y);
          y1 = Math.max(y1, y);
        }
      }
    const grid = new Float32Array(size * size);
    if (x1 < 0) return grid;
    const scale = box / Math.max(x1 - x0 + 1, y1 - y0 + 1);
    const offX = (size - (x1 - x0 + 1) * scale) / 2,
      offY = (size - (y1 - y0 + 1) * scale) / 2;
    const off = document.createElement("canvas");
    off.width = off.height = size;
    const octx = off.getContext("2d", { willReadFrequently: true });
    octx.fillStyle = "#fff";
    octx.fillRect(0, 0, size, size);
    octx.imageSmoothingQuality = "high";
    octx.drawImage(
      this.#canvas,
      x0,
      y0,
      x1 - x0 + 1,
      y1 - y0 + 1,
      offX,
      offY,
      (x1 - x0 + 1) * scale,
      (y1 - y0 + 1) * scale,
    );
    const small = octx.getImageData(0, 0, size, size).data;
    for (let i = 0; i < size * size; i++) grid[i] = 1 - small[i * 4] / 255;
    return grid;
  }

  /** 64 values 0–16: a 32×32 bitmap (digit fills ~the whole height), on-pixels counted per 4×4 block. */
  digits8x8() {
    const bitmap = this.#coverage(32, 30);
    const out = new Float32Array(64);
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++) {
        if (bitmap[y * 32 + x] > 0.35) out[(y >> 2) * 8 + (x >> 2)] += 1;
      }
    return out;
  }

  /** 784 values 0–255, white ink on black, the drawing scaled into the central 20×20 (MNIST style). */
  grey28x28() {
    return this.#coverage(28, 20).map((v) => Math.round(v * 255));
  }
}

/** Paints `values` (a side×side grid, 0–max) into a thumbnail canvas, dark = ink. */
export function paintThumbnail(canvas, values, side, max) {
  const ctx = canvas.getContext("2d");
  const cell = canvas.width / side;
  for (let i = 0; i < side * side; i++) {
    const shade = 255 - Math.round((Math.min(values[i], max) / max) * 255);
    ctx.fillStyle = `rgb(${shade},${shade},${shade})`;
    ctx.fillRect((i % side) * cell, Math.floor(i / side) * cell, cell, cell);
  }
}
