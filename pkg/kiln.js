// Kiln's JS API: a thin, idiomatic wrapper over the wasm bindings. Runs in browsers (WebGPU or
// CPU wasm, optionally inside a Web Worker) and in Node 20 (CPU wasm).
import initWasm, { Kiln as WasmKiln } from "./wasm/kiln.js";
import { defaultStore, isModelId } from "./store.js";

export { MemoryStore, IndexedDbStore, DirectoryStore, defaultStore, assertModelId, isModelId } from "./store.js";

const isNode = typeof process !== "undefined" && process.versions?.node != null && typeof window === "undefined";
const BACKENDS = ["auto", "webgpu", "cpu"];
let wasmReady;
let wasmMemory;

/** Loads the wasm module once (from the package's own files, in browsers and in Node). */
function loadWasm() {
  wasmReady ??= (async () => {
    const url = new URL("./wasm/kiln_bg.wasm", import.meta.url);
    if (isNode) {
      const { readFile } = await import("node:fs/promises");
      wasmMemory = (await initWasm({ module_or_path: await readFile(url) })).memory;
    } else {
      wasmMemory = (await initWasm({ module_or_path: url })).memory;
    }
  })();
  return wasmReady;
}

/** Asks the browser for a WebGPU adapter. */
async function probeWebGpu() {
  const gpu = globalThis.navigator?.gpu;
  if (!gpu) return { ok: false, reason: "WebGPU unavailable (this runtime has no navigator.gpu)" };
  let adapter = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { ok: false, reason: `WebGPU unavailable (requestAdapter failed: ${e?.message ?? e})` };
  }
  if (!adapter) return { ok: false, reason: "WebGPU unavailable (no adapter)" };
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ");
  return { ok: true, fallback: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter), name };
}

/** Chooses the backend for `backend: "webgpu" | "cpu" | "auto"`. */
async function chooseBackend(backend) {
  if (!BACKENDS.includes(backend)) {
    throw new TypeError(`backend must be one of ${BACKENDS.map((b) => `"${b}"`).join(", ")}, got ${JSON.stringify(backend)}`);
  }
  if (backend === "cpu") return { kind: "cpu" };
  const probe = await probeWebGpu();
  if (backend === "webgpu") {
    if (!probe.ok) throw new Error(`backend "webgpu" was requested but ${probe.reason}; use backend: "cpu" or "auto"`);
    return { kind: "webgpu", adapterName: probe.name };
  }
  if (!probe.ok) return { kind: "cpu", reason: probe.reason };
  if (probe.fallback) {
    return {
      kind: "cpu",
      reason: "the only WebGPU adapter is a software fallback (isFallbackAdapter), which trains slower than CPU-wasm (see BENCHMARKS.md)",
    };
  }
  return { kind: "webgpu", adapterName: probe.name };
}

/**
 * What a string given to `preloadedModel` means: a valid model id (letters, digits, `-`, `_`)
 * is looked up in the store; a URL with a scheme (`https:`, `http:`, `blob:`, `data:`) or a
 * path-like reference (`/…`, `./…`, `../…`, resolved against the page) is fetched. Model ids
 * can never contain `:`, `.` or `/`, so no string can mean both. Anything else is an error.
 */
export function modelSource(source) {
  if (isModelId(source)) return "id";
  if (/^(https?:|blob:|data:)/i.test(source) || /^\.{0,2}\//.test(source)) return "url";
  return "invalid";
}

/** A trained model: predict and export. */
export class Model {
  #inner;
  constructor(inner) { this.#inner = inner; }
  /** The model id. */
  get guid() { return this.#inner.guid; }
  /** Metadata: name, task, input shape, outputs, metrics. */
  get info() { return this.#inner.info; }
  /** Class probabilities (or values) for row-major samples, `rows × numOutputs`. */
  predict(features, shape) {
    if (!(features instanceof Float32Array)) {
      return Promise.reject(new TypeError("features must be a Float32Array of row-major samples"));
    }
    return this.#inner.predict(features, shape);
  }
  /** The portable model bytes (what `kiln models import` reads). */
  export() { return this.#inner.export(); }
}

/** A training job: returned at once by `kiln.train(...)`. */
export class TrainingJob {
  #inner;
  #done;
  constructor(inner) {
    this.#inner = inner;
    this.#done = inner.waitForTraining();
    this.#done.catch(() => {}); // failures surface through waitForTraining()
  }
  /** `"trainingjob-<uuid>"`. */
  get id() { return this.#inner.id; }
  /** `"queued" | "processing" | "completed" | "failed" | "cancelled"`. */
  status() { return this.#inner.status(); }
  /** The latest progress report (undefined before the first). */
  progress() { return this.#inner.progress(); }
  /** Why the job failed or was cancelled. */
  get error() { return this.#inner.error; }
  /** `{ guid }` of the trained model once completed. */
  get trainedModel() { return this.#inner.trainedModel; }
  /** Calls `callback(progress)` on every progress report. */
  onProgress(callback) {
    if (typeof callback !== "function") throw new TypeError("onProgress takes a function");
    this.#inner.onProgress(callback);
  }
  /** Resolves with the TrainRunInfo; rejects with an Error (with `status`) on failure or cancel. */
  waitForTraining() { return this.#done; }
  /** Stops the job before its next step; it ends as "cancelled". */
  cancel() { this.#inner.cancel(); }
  /** Every event (`started`, `progress`, `evaluated`, `checkpoint`) until the job ends. */
  async *events() {
    const queue = [];
    let wake = null;
    let finished = false;
    this.#inner.onEvent((event) => { queue.push(event); wake?.(); });
    this.#done.then(() => { finished = true; wake?.(); }, () => { finished = true; wake?.(); });
    while (true) {
      if (queue.length > 0) { yield queue.shift(); continue; }
      if (finished) return;
      await new Promise((resolve) => { wake = resolve; });
      wake = null;
    }
  }
}

/** The entry point: a backend, a model store, and the job API. */
export class Kiln {
  #inner;
  #adapterName;
  constructor(inner, adapterName) { this.#inner = inner; this.#adapterName = adapterName; }

  /**
   * Opens Kiln. `backend`: "webgpu" | "cpu" | "auto" (default: the fastest available; a
   * software WebGPU adapter counts as slower than CPU-wasm). `store`: a model store object;
   * default IndexedDB in browsers, memory in Node, or files when `storeDir` is given.
   * `worker: true` runs training in a dedicated Web Worker behind the same API. `limits`
   * raises or lowers the input limits of this wasm instance (README: "Limits"), e.g.
   * `{ maxParameters: 200_000_000 }`.
   */
  static async create(options = {}) {
    if (options === null || typeof options !== "object") throw new TypeError("Kiln.create takes an options object");
    const { backend = "auto", store, storeDir, worker = false, limits } = options;
    if (limits !== undefined && (limits === null || typeof limits !== "object")) {
      throw new TypeError("limits must be an object such as { maxParameters: 200000000 }");
    }
    if (worker) {
      const { WorkerKiln } = await import("./worker.js");
      return WorkerKiln.create({ backend, store, storeDir, limits });
    }
    const [choice] = await Promise.all([chooseBackend(backend), loadWasm()]);
    if (limits !== undefined) WasmKiln.setLimits(limits);
    const modelStore = store ?? (await defaultStore({ dir: storeDir }));
    return new Kiln(await WasmKiln.open(choice.kind, modelStore, choice.reason), choice.adapterName);
  }

  /** `{ kind: "webgpu" | "cpu", adapter?, reason? }`: which backend is in use and why. */
  get backend() {
    const backend = this.#inner.backend;
    // wgpu's adapter name is empty in browsers; the JS adapter info (vendor, architecture) is not.
    if (backend.adapter && this.#adapterName && !backend.adapter.trim().startsWith(this.#adapterName)) {
      backend.adapter = `${this.#adapterName} ${backend.adapter.trim()}`;
    }
    return backend;
  }

  /** Resolves if `config` is valid; rejects with the validator's Error (field path, value, what is allowed). */
  async validateConfig(config) { WasmKiln.validateConfig(config); }

  /** Bytes of wasm linear memory in use by this Kiln's module (it only grows; watch it across epochs). */
  async memoryBytes() { return wasmMemory.buffer.byteLength; }

  /** Starts training and returns the job at once. Throws on a bad config or bad data. */
  train(config, data) { return new TrainingJob(this.#inner.train(config, data, undefined)); }

  /** @internal Starts a job under an id handed out by the worker proxy. */
  _trainWithId(config, data, jobId) { return new TrainingJob(this.#inner.train(config, data, jobId)); }

  /** A model from the store (id), a URL, or exported bytes (Uint8Array). */
  async preloadedModel(source) {
    const kind = typeof source === "string" ? modelSource(source) : "bytes";
    if (kind === "invalid") {
      throw new TypeError(`preloadedModel: ${JSON.stringify(source).slice(0, 80)} is neither a model id (letters, digits, \`-\`, \`_\`) nor a URL (https:, http:, blob:, data:, or a path starting with /, ./ or ../)`);
    }
    if (kind === "url") {
      let response;
      try {
        response = await fetch(source);
      } catch (e) {
        throw new Error(`cannot fetch model ${source}: ${e?.message ?? e}`);
      }
      if (!response.ok) throw new Error(`cannot fetch model ${source}: HTTP ${response.status}`);
      source = new Uint8Array(await response.arrayBuffer());
    }
    return new Model(await this.#inner.preloadedModel(source));
  }

  /** Metadata of every stored model. */
  listModels() { return this.#inner.listModels(); }
  /** Deletes a stored model; resolves true if it existed. */
  deleteModel(guid) { return this.#inner.deleteModel(guid); }
  /** Stores exported model bytes; resolves with the model id. An id already stored is refused unless `{ force: true }`. */
  importModel(bytes, { force = false } = {}) {
    if (!(bytes instanceof Uint8Array)) return Promise.reject(new TypeError("importModel takes the model's bytes as a Uint8Array"));
    return this.#inner.importModel(bytes, Boolean(force));
  }
}
