// `make demo`: serves the demo page on 127.0.0.1 (a secure context, so WebGPU works) with the
// npm package under /pkg/ and, when Debian's dataset-fashion-mnist is installed, its IDX files
// under /datasets/fashion-mnist/.  Usage: node www/serve.mjs [--port N]  (default 8080; 0 = any)
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve, sep } from "node:path";

const www = resolve(import.meta.dirname);
const pkg = resolve(www, "../pkg");
const fashionDir = process.env.KILN_FASHION_MNIST ?? "/usr/share/datasets/fashion-mnist";
const FASHION_FILES = [
  "train-images-idx3-ubyte.gz",
  "train-labels-idx1-ubyte.gz",
  "t10k-images-idx3-ubyte.gz",
  "t10k-labels-idx1-ubyte.gz",
];
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".css": "text/css",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".gz": "application/octet-stream",
};

/** Maps a URL path onto a file under one of the served roots, or null (no escaping a root). */
function resolvePath(urlPath) {
  const path = normalize(urlPath);
  const mounts = [
    ["/pkg/", pkg],
    ["/datasets/fashion-mnist/", fashionDir],
    ["/", www],
  ];
  for (const [prefix, root] of mounts) {
    if (!path.startsWith(prefix)) continue;
    const file = resolve(root, path.slice(prefix.length) || "index.html");
    return file === root || file.startsWith(root + sep) ? file : null;
  }
  return null;
}

async function fashionAvailable() {
  try {
    await Promise.all(FASHION_FILES.map((f) => stat(join(fashionDir, f))));
    return true;
  } catch {
    return false;
  }
}

const server = createServer(async (req, res) => {
  let path;
  try {
    path = decodeURIComponent(new URL(req.url, "http://localhost").pathname);
  } catch {
    return res.writeHead(400).end("bad URL");
  }
  if (path === "/datasets.json") {
    const body = JSON.stringify({ "fashion-mnist": await fashionAvailable() });
    return res.writeHead(200, { "content-type": TYPES[".json"], "cache-control": "no-store" }).end(body);
  }
  const file = resolvePath(path);
  if (!file) return res.writeHead(404).end("not found");
  try {
    const body = await readFile(file);
    res.writeHead(200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "cache-control": "no-cache",
    });
    res.end(body);
  } catch {
    res.writeHead(404).end("not found");
  }
});

const portArg = process.argv.indexOf("--port");
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : Number(process.env.PORT ?? 8080);
server.on("error", (e) => {
  console.error(`kiln demo: cannot listen on 127.0.0.1:${port}: ${e.message} (try --port 0)`);
  process.exit(1);
});
server.listen(port, "127.0.0.1", () => {
  console.log(`Kiln demo: http://127.0.0.1:${server.address().port}/`);
});
