// `kiln/cpu`: the same API as `kiln` with the CPU wasm build only — for apps that never train on
// WebGPU (Node, edge runtimes, small pages): bundlers emit no WebGPU module for them at all.
// `backend: "webgpu"` is refused; `"auto"` means the CPU.
import { defineKiln } from "./core.js";

/** The CPU wasm build, as bundlers see it. */
const builds = {
  cpu: {
    glue: () => import("./wasm/kiln-cpu.js"),
    wasm: () => new URL("./wasm/kiln-cpu_bg.wasm", import.meta.url),
  },
};

/** The entry point: a backend, a model store, and the job API (see `Kiln.create`). */
export const Kiln = defineKiln({
  name: '"kiln/cpu"',
  builds,
  createWorker: () => new Worker(new URL("./cpu-worker.js", import.meta.url), { type: "module" }),
});

export { Model, TrainingJob, modelSource, loadedBuilds } from "./core.js";
export { MemoryStore, IndexedDbStore, DirectoryStore, defaultStore, assertModelId, isModelId } from "./store.js";
