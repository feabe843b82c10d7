// Shared by the Node tests: pack the npm package, install the tarball into a temp project, and
// import it by name from there, exactly as a consumer would.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

export const repo = resolve(import.meta.dirname, "../..");
export const kilnBin = join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "debug", "kiln");

let installed;
let entryUrl;
let cpuEntryUrl;

/** The file URL a script can import the installed package from (after installPackage()). */
export function packageEntryUrl() {
  return entryUrl;
}

/** The installed package's `kiln/cpu` entry (the CPU wasm build only). */
export async function installCpuEntry() {
  await installPackage();
  return import(cpuEntryUrl);
}

/** Packs pkg/, installs it into a fresh project and returns the imported package. */
export async function installPackage() {
  installed ??= (async () => {
    const project = mkdtempSync(join(tmpdir(), "kiln-consumer-"));
    execFileSync("npm", ["pack", join(repo, "pkg"), "--pack-destination", project, "--silent"], { stdio: "pipe" });
    const tarball = readdirSync(project).find((f) => f.endsWith(".tgz"));
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
    execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", join(project, tarball)], {
      cwd: project,
      stdio: "pipe",
    });
    writeFileSync(join(project, "entry.mjs"), 'export * from "kiln";\n');
    writeFileSync(join(project, "cpu-entry.mjs"), 'export * from "kiln/cpu";\n');
    entryUrl = pathToFileURL(join(project, "entry.mjs")).href;
    cpuEntryUrl = pathToFileURL(join(project, "cpu-entry.mjs")).href;
    return import(entryUrl);
  })();
  return installed;
}

/** Runs the native CLI; returns stdout. */
export function kiln(args) {
  return execFileSync(kilnBin, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, XDG_RUNTIME_DIR: tmpdir() },
  });
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Debian's headless Chromium with WebGPU (SwiftShader) enabled; Playwright's own download is offline-blocked. */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--enable-unsafe-webgpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
}

const servers = new Set();
/** Kills every server a test left running (call it from an `after` hook). */
export function killServers() {
  for (const s of servers) s.child.kill("SIGKILL");
}
process.on("exit", killServers);

/**
 * Starts `kiln serve` on a free loopback port, or on `addr` (extra environment in `env`);
 * resolves once it prints its URL.
 */
export function startServer(args = [], dataDir = tempDir("kiln-serve-"), env = {}, addr = "127.0.0.1:0") {
  const child = spawn(kilnBin, ["serve", "--addr", addr, "--data-dir", dataDir, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, XDG_RUNTIME_DIR: tmpdir(), ...env },
  });
  const server = { child, dataDir, log: "" };
  servers.add(server);
  child.stderr.on("data", (d) => {
    server.log += d;
  });
  server.exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      servers.delete(server);
      resolve({ code, signal });
    }),
  );
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server did not start: ${server.log}`)), 30000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+).*worker (worker-[0-9a-f-]+)/);
      if (m) {
        clearTimeout(timer);
        server.url = m[1];
        server.worker = m[2];
        resolve(server);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code}: ${server.log}`));
    });
  });
}

/** Stops a server (SIGTERM by default); resolves with its exit code and signal. */
export async function stopServer(server, signal = "SIGTERM") {
  server.child.kill(signal);
  return server.exited;
}
