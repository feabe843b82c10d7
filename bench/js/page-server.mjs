// Shared by the in-Chromium benches: a loopback server for the repository's files (plus a few
// generated routes) and Debian's headless Chromium with WebGPU (SwiftShader) enabled.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { chromium } from "playwright-core";

export const repo = resolve(import.meta.dirname, "../..");
const TYPES = {
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
  ".html": "text/html",
  ".json": "application/json",
};

/** Serves `routes` ({ path: [contentType, body] }) and every repository file; resolves to the base URL and the server. */
export async function serveRepo(routes = {}) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (routes[path]) return res.writeHead(200, { "content-type": routes[path][0] }).end(routes[path][1]);
    try {
      const body = await readFile(join(repo, path));
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, server };
}

/** Routes serving every file of a package directory (like pkg/) under `prefix`. */
export async function packageRoutes(dir, prefix) {
  const { readdir, readFile: read } = await import("node:fs/promises");
  const routes = {};
  for (const sub of ["", "wasm/"]) {
    for (const file of await readdir(join(dir, sub)).catch(() => [])) {
      if (!/\.(js|wasm)$/.test(file)) continue;
      routes[`${prefix}/${sub}${file}`] = [TYPES[extname(file)], await read(join(dir, sub, file))];
    }
  }
  return routes;
}

/**
 * An init script (`page.addInitScript(countGpuCalls)`) that counts what a page asks of WebGPU
 * in `globalThis.gpuCalls`: compute pipelines, KB of WGSL, main-thread ms spent creating them,
 * dispatches and queue submits — by wrapping the GPUDevice / pass / queue methods.
 */
export function countGpuCalls() {
  if (typeof GPUDevice === "undefined") return;
  const count = (globalThis.gpuCalls = { pipelines: 0, wgsl_kb: 0, create_ms: 0, dispatches: 0, submits: 0 });
  const wrap = (proto, name, before) => {
    const original = proto[name];
    proto[name] = function (...args) {
      before(...args);
      const t = performance.now();
      try {
        return original.apply(this, args);
      } finally {
        if (name.startsWith("create")) count.create_ms += performance.now() - t;
      }
    };
  };
  wrap(GPUDevice.prototype, "createComputePipeline", () => count.pipelines++);
  wrap(GPUDevice.prototype, "createComputePipelineAsync", () => count.pipelines++);
  wrap(GPUDevice.prototype, "createShaderModule", (d) => {
    count.wgsl_kb += d.code.length / 1000;
  });
  wrap(GPUComputePassEncoder.prototype, "dispatchWorkgroups", () => count.dispatches++);
  wrap(GPUComputePassEncoder.prototype, "dispatchWorkgroupsIndirect", () => count.dispatches++);
  wrap(GPUQueue.prototype, "submit", () => count.submits++);
}

/** Debian's headless Chromium with `--enable-unsafe-webgpu` (its only adapter here is SwiftShader). */
export function launchChromium() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--enable-unsafe-webgpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
}
