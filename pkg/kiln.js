// `kiln`: the whole package. Two wasm builds, each fetched only when a backend needs it: the CPU
// build for `backend: "cpu"`, Node and an `auto` that picks the CPU; the WebGPU build (which also
// has the CPU backend) for WebGPU. Same API, same model bytes, same results.
import { defineKiln } from "./core.js";

/** The wasm builds, as bundlers see them: each glue module and wasm file is its own lazy chunk. */
const builds = {
  cpu: {
    glue: () => import("./wasm/kiln-cpu.js"),
    wasm: () => new URL("./wasm/kiln-cpu_bg.wasm", import.meta.url),
  },
  webgpu: {
    glue: () => import("./wasm/kiln-webgpu.js"),
    wasm: () => new URL("./wasm/kiln-webgpu_bg.wasm", import.meta.url),
  },
};

/** The entry point: a backend, a model store, and the job API (see `Kiln.create`). */
export const Kiln = defineKiln({
  name: '"kiln"',
  builds,
  createWorker: () => new Worker(new URL("./worker.js", import.meta.url), { type: "module" }),
});

export { Model, TrainingJob, modelSource, loadedBuilds } from "./core.js";
export { MemoryStore, IndexedDbStore, DirectoryStore, defaultStore, assertModelId, isModelId } from "./store.js";
