// The digits benchmark data for JS runtimes: the embedded UCI digits, standardised with
// training statistics, a seeded 1437/360 split — the same arrays for Kiln and TensorFlow.js.
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

export function loadDigits(path) {
  const rows = gunzipSync(readFileSync(path))
    .toString("utf8")
    .trim()
    .split("\n")
    .map((l) => l.split(",").map(Number));
  // Seeded Fisher-Yates (mulberry32), identical on every run.
  let seed = 7;
  const rand = () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = rows.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [rows[i], rows[j]] = [rows[j], rows[i]];
  }
  const test = rows.slice(0, 360),
    train = rows.slice(360);
  const mean = new Float64Array(64),
    std = new Float64Array(64);
  for (const r of train) for (let i = 0; i < 64; i++) mean[i] += r[i] / train.length;
  for (const r of train) for (let i = 0; i < 64; i++) std[i] += (r[i] - mean[i]) ** 2 / train.length;
  for (let i = 0; i < 64; i++) std[i] = Math.sqrt(std[i]) < 1e-6 ? 1 : Math.sqrt(std[i]);
  const pack = (set) => ({
    features: Float32Array.from(set.flatMap((r) => r.slice(0, 64).map((v, i) => (v - mean[i]) / std[i]))),
    labels: Int32Array.from(set.map((r) => r[64])),
    n: set.length,
  });
  return { train: pack(train), test: pack(test) };
}
