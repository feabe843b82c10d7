// `make size`: what a page downloads to train with Kiln on each backend, next to TensorFlow.js's
// equivalent downloads (bench/js's npm packages): raw, gzip -9 and brotli (quality 11) bytes
// per file and per backend, as a Markdown table for BENCHMARKS.md. `--json` prints JSON.
import { readFileSync, existsSync } from "node:fs";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const pkg = join(repo, "pkg");
const tfjs = join(repo, "bench/js/node_modules/@tensorflow");

/** Raw, gzip -9 and brotli q11 sizes of one file. */
function measure(path) {
  const bytes = readFileSync(path);
  return {
    raw: bytes.length,
    gzip: gzipSync(bytes, { level: 9 }).length,
    brotli: brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  };
}

/** The JS modules a page loads from the package for one entry (the wasm-bindgen glue included). */
const KILN_JS = {
  cpu: ["cpu.js", "core.js", "store.js", "relayed-job.js", "wasm/kiln-cpu.js"],
  webgpu: ["kiln.js", "core.js", "store.js", "relayed-job.js", "wasm/kiln-webgpu.js"],
};

/** One download set: files under `root`, measured and summed. */
function group(library, what, root, files) {
  const missing = files.filter((f) => !existsSync(join(root, f)));
  if (missing.length > 0)
    throw new Error(
      `${library}: missing ${missing.map((f) => join(root, f)).join(", ")} (run \`make pkg\` / \`cd bench/js && npm ci\`)`,
    );
  const sizes = files.map((f) => ({ file: f, ...measure(join(root, f)) }));
  const total = sizes.reduce((t, s) => ({ raw: t.raw + s.raw, gzip: t.gzip + s.gzip, brotli: t.brotli + s.brotli }), {
    raw: 0,
    gzip: 0,
    brotli: 0,
  });
  return { library, what, files: sizes, total };
}

const rows = [
  group("Kiln", "CPU wasm (`kiln-cpu_bg.wasm`)", pkg, ["wasm/kiln-cpu_bg.wasm"]),
  group("Kiln", "JS for CPU (`kiln/cpu`: entry, core, store, jobs, glue)", pkg, KILN_JS.cpu),
  group("Kiln", "WebGPU wasm (`kiln-webgpu_bg.wasm`)", pkg, ["wasm/kiln-webgpu_bg.wasm"]),
  group("Kiln", "JS for WebGPU (`kiln`: entry, core, store, jobs, glue)", pkg, KILN_JS.webgpu),
  group(
    "Kiln",
    "built-in digits data set (`digits.csv.gz`, already gzipped; fetched only by a job that trains on `digits`, so not in the totals)",
    pkg,
    ["wasm/digits.csv.gz"],
  ),
  group("TF.js 4.22", "core + layers (minified JS, needed to train)", tfjs, [
    "tfjs-core/dist/tf-core.min.js",
    "tfjs-layers/dist/tf-layers.min.js",
  ]),
  group("TF.js 4.22", "wasm backend: JS + SIMD wasm", tfjs, [
    "tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
    "tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm",
  ]),
  group("TF.js 4.22", "webgpu backend (minified JS)", tfjs, ["tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js"]),
];

/** What a page downloads to train on each backend. */
const totals = [
  ["Kiln, CPU (`kiln/cpu`, or `kiln` with backend cpu)", [0, 1]],
  ["Kiln, WebGPU (`kiln`)", [2, 3]],
  ["TF.js, wasm backend (core + layers + wasm)", [5, 6]],
  ["TF.js, webgpu backend (core + layers + webgpu)", [5, 7]],
].map(([what, parts]) => ({
  what,
  total: parts
    .map((i) => rows[i].total)
    .reduce((t, s) => ({ raw: t.raw + s.raw, gzip: t.gzip + s.gzip, brotli: t.brotli + s.brotli })),
}));

const kb = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} KB`);
if (process.argv.includes("--json")) {
  console.log(JSON.stringify({ rows, totals }, null, 2));
} else {
  console.log("| library | download | raw | gzip -9 | brotli |\n|---|---|---:|---:|---:|");
  for (const r of rows)
    console.log(`| ${r.library} | ${r.what} | ${kb(r.total.raw)} | ${kb(r.total.gzip)} | ${kb(r.total.brotli)} |`);
  for (const t of totals)
    console.log(`| **total** | ${t.what} | ${kb(t.total.raw)} | **${kb(t.total.gzip)}** | ${kb(t.total.brotli)} |`);
}
