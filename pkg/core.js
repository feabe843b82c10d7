// Kiln's JS API, shared by the package's entry points: `kiln` (CPU and WebGPU wasm, each loaded
// only when a backend needs it) and `kiln/cpu` (the CPU wasm only). An entry describes its wasm
// builds and its worker; everything else — jobs, models, crash recovery — lives here. Runs in
// browsers (WebGPU or CPU wasm, optionally inside a Web Worker) and in Node 20 (CPU wasm).
import { defaultStore, isModelId } from "./store.js";
import { eventsUntil } from "./relayed-job.js";
import { jobStore, keepCheckpoints } from "./job-store.js";

const isNode = typeof process !== "undefined" && process.versions?.node != null && typeof window === "undefined";
const BACKENDS = ["auto", "webgpu", "cpu"];

/**
 * One wasm build (`cpu` or `webgpu`) loaded into this page or process. A Rust panic traps the
 * instance, leaving its memory and locks in an unknown state, so Kiln never calls it again: the
 * panic hook reports the message here, every Promise of that instance rejects with it, and the
 * next call starts a fresh instance of the same compiled module (`generation` counts them); each
 * `Kiln` re-opens itself on it.
 */
class WasmRuntime {
  generation = 0;
  crash = null;
  lastCrash = null;
  pending = new Set();
  limits = undefined;
  swallowTrap = null;
  /** The wasm-bindgen glue module (its `Kiln` class and `__wbg_reset_state`). */
  glue = null;

  constructor(name) {
    this.name = name;
  }

  /** Loads the build's glue and wasm (from the package's own files, in browsers and in Node). */
  async load(build) {
    // The wasm is fetched and compiled while the glue module loads, not after it.
    const [glue, module] = await Promise.all([build.glue(), compileWasm(build.wasm())]);
    await glue.default({ module_or_path: module });
    this.glue = glue;
    glue.Kiln.onPanic((message) => this.recordCrash(message));
    return this;
  }

  /** The wasm `Kiln` class of the live instance. */
  get WasmKiln() {
    return this.glue.Kiln;
  }

  /** The panic hook's listener (runs inside the panicking call, just before the trap). */
  recordCrash(message) {
    if (this.crash !== null) return;
    this.crash = message;
    const pending = [...this.pending];
    this.pending.clear();
    for (const reject of pending) reject(new Error(message));
    if (isNode) this.ignoreTheTrap();
  }

  /**
   * A trap inside a spawned future unwinds out of wasm-bindgen's microtask, where Node would
   * treat it as an uncaught exception and end the process. For this one turn only, that trap (a
   * WebAssembly.RuntimeError) is taken as handled — the panic was already reported and its jobs
   * failed; any other exception still ends the process as it would have.
   */
  ignoreTheTrap() {
    if (this.swallowTrap) return;
    const listener = (error) => {
      stopIgnoring();
      if (error instanceof WebAssembly.RuntimeError) return;
      console.error(error);
      process.exit(1);
    };
    const stopIgnoring = () => {
      process.removeListener("uncaughtException", listener);
      if (this.swallowTrap === stopIgnoring) this.swallowTrap = null;
    };
    this.swallowTrap = stopIgnoring;
    process.on("uncaughtException", listener);
    setTimeout(stopIgnoring, 0);
  }

  /** Starts a fresh wasm instance if the current one panicked. */
  restartIfCrashed() {
    if (this.crash === null) return;
    this.swallowTrap?.();
    this.glue.__wbg_reset_state();
    this.generation += 1;
    this.lastCrash = this.crash;
    this.crash = null;
    this.WasmKiln.onPanic((message) => this.recordCrash(message));
    if (this.limits !== undefined) this.WasmKiln.setLimits(this.limits);
    if (digitsBytes !== null) this.WasmKiln.provideDigits(digitsBytes);
  }

  /** The Error a trapped call becomes (the panic message when the hook saw it). */
  asCrash(error) {
    if (!(error instanceof WebAssembly.RuntimeError)) return error;
    this.recordCrash(
      `internal error: Kiln's wasm module trapped (${error.message}); Kiln restarts it for the next call — please report the bug`,
    );
    this.swallowTrap?.();
    return new Error(this.crash);
  }

  /** Runs a synchronous wasm call on a live instance; a trap becomes an Error. */
  call(fn) {
    this.restartIfCrashed();
    try {
      return fn();
    } catch (error) {
      throw this.asCrash(error);
    }
  }

  /** A wasm Promise that also rejects if its instance panics (a trapped instance never settles it). */
  untilSettledOrCrashed(promise) {
    return new Promise((resolve, reject) => {
      this.pending.add(reject);
      promise.then(
        (value) => {
          this.pending.delete(reject);
          resolve(value);
        },
        (error) => {
          this.pending.delete(reject);
          reject(this.asCrash(error));
        },
      );
    });
  }

  /** Refuses a call on an object that belongs to a crashed wasm instance. */
  checkGeneration(generation, what) {
    if (generation !== this.generation || this.crash !== null) {
      throw new Error(
        `this ${what} belonged to a wasm instance that crashed (${this.lastCrash ?? "internal error"}); load it again`,
      );
    }
  }
}

/**
 * Fetches and compiles a build's wasm: streaming in browsers (compiled as it downloads), from
 * the file in Node. A server that does not send `application/wasm` still works (compiled from
 * the bytes); one that answers with an error says so, naming the URL.
 */
async function compileWasm(url) {
  if (isNode) {
    const { readFile } = await import("node:fs/promises");
    return WebAssembly.compile(await readFile(url));
  }
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch Kiln's wasm from ${url}: ${e?.message ?? e}`);
  }
  if (!response.ok)
    throw new Error(
      `cannot fetch Kiln's wasm from ${url}: HTTP ${response.status} (serve the package's wasm/ folder beside its JS; the book's "JavaScript API" chapter, "Self-hosting the wasm")`,
    );
  const type = response.headers.get("content-type") ?? "";
  if (typeof WebAssembly.compileStreaming === "function" && type.split(";")[0].trim() === "application/wasm") {
    return WebAssembly.compileStreaming(response);
  }
  return WebAssembly.compile(await response.arrayBuffer());
}

/** The builds loaded so far, by name: one instance of each per page or process. */
const runtimes = new Map();

/**
 * The wasm runtime for a chosen backend (`"cpu"` or `"webgpu"`, from `chooseBackend`, which
 * only picks a build the entry has): each build is loaded once per page or process, when first
 * needed. (The WebGPU build is optimised for size — its code mostly drives the GPU — so CPU
 * training always runs on the fast CPU build, even on a page that also uses WebGPU.)
 */
function runtimeFor(kind, builds) {
  if (!runtimes.has(kind)) {
    const loading = new WasmRuntime(kind).load(builds[kind]);
    runtimes.set(kind, loading);
    loading.catch(() => runtimes.delete(kind));
  }
  return runtimes.get(kind);
}

/** Which wasm builds have been loaded (`"cpu"`, `"webgpu"`): what a page has downloaded. */
export function loadedBuilds() {
  return [...runtimes.keys()].sort();
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

/** Chooses the backend for `backend: "webgpu" | "cpu" | "auto"` among an entry's builds. */
async function chooseBackend(backend, entry) {
  if (!BACKENDS.includes(backend)) {
    throw new TypeError(
      `backend must be one of ${BACKENDS.map((b) => `"${b}"`).join(", ")}, got ${JSON.stringify(backend)}`,
    );
  }
  if (backend === "cpu") return { kind: "cpu" };
  if (!entry.builds.webgpu) {
    if (backend === "webgpu") {
      throw new Error(
        `backend "webgpu" needs the WebGPU build, which ${entry.name} does not include; import from "kiln" instead, or use backend: "cpu"`,
      );
    }
    return { kind: "cpu", reason: `${entry.name} has only the CPU build` };
  }
  const probe = await probeWebGpu();
  if (backend === "webgpu") {
    if (!probe.ok) throw new Error(`backend "webgpu" was requested but ${probe.reason}; use backend: "cpu" or "auto"`);
    return { kind: "webgpu", adapterName: probe.name };
  }
  if (!probe.ok) return { kind: "cpu", reason: probe.reason };
  if (probe.fallback) {
    return {
      kind: "cpu",
      reason:
        "the only WebGPU adapter is a software fallback (isFallbackAdapter), which trains slower than CPU-wasm (see BENCHMARKS.md)",
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

/** `model.init_from.bytes` as a Uint8Array, or a TypeError. */
function initBytes(bytes) {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  throw new TypeError("model.init_from.bytes must be a Uint8Array or an ArrayBuffer (a .safetensors file)");
}

/** A URL's bytes; an Error starting with `what` and naming the URL and status when it cannot be fetched. */
async function fetchBytes(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`${what}: cannot fetch ${url}: ${error?.message ?? error}`);
  }
  if (!response.ok) throw new Error(`${what}: cannot fetch ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** `model.init_from.url`'s bytes; an Error naming the URL and status when it cannot be fetched. */
async function fetchInitWeights(url) {
  if (typeof url !== "string") throw new TypeError("model.init_from.url must be a string");
  return fetchBytes(url, "model.init_from.url");
}

/**
 * The built-in digits data set (`wasm/digits.csv.gz`, 57 KB): the wasm modules do not embed it,
 * so only a job that trains on it downloads it — once per page or process, again after a
 * failed try. Read from the file in Node.
 */
const digitsUrl = () => new URL("./wasm/digits.csv.gz", import.meta.url);
const DIGITS =
  'data.source "digits" (the package\'s wasm/digits.csv.gz; the book\'s "JavaScript API" chapter, "Self-hosting the wasm")';
let digitsFile = null;
/** The digits' bytes once a module took them: a wasm instance started after a crash gets them again. */
let digitsBytes = null;

function fetchDigits() {
  if (digitsFile === null) {
    const url = digitsUrl();
    digitsFile = isNode
      ? import("node:fs/promises")
          .then((fs) => fs.readFile(url))
          .then(
            (bytes) => new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
            (error) => {
              throw new Error(`${DIGITS}: cannot read ${url}: ${error.message}`);
            },
          )
      : fetchBytes(url, DIGITS);
    digitsFile.catch(() => {
      digitsFile = null;
    });
  }
  return digitsFile;
}

/** Hands the fetched digits to the live wasm instance; bytes that are not the digits are an Error naming the URL. */
function provideDigits(runtime, bytes) {
  try {
    runtime.WasmKiln.provideDigits(bytes);
  } catch (error) {
    digitsFile = null;
    throw new Error(`${DIGITS}: ${digitsUrl()}: ${error.message}`);
  }
  digitsBytes = bytes;
}

/** A trained model: predict and export. */
export class Model {
  #inner;
  #runtime;
  #generation;
  /** @internal */
  constructor(inner, runtime) {
    this.#inner = inner;
    this.#runtime = runtime;
    this.#generation = runtime.generation;
  }
  /** The model id. */
  get modelId() {
    return this.#inner.modelId;
  }
  /** Metadata: name, task, input shape, outputs, metrics. */
  get info() {
    return this.#inner.info;
  }
  /** Class probabilities (or values) for row-major samples, `rows × numOutputs`. */
  async predict(features, shape) {
    if (!(features instanceof Float32Array)) {
      throw new TypeError("features must be a Float32Array of row-major samples");
    }
    this.#runtime.checkGeneration(this.#generation, "Model");
    return this.#runtime.untilSettledOrCrashed(this.#runtime.call(() => this.#inner.predict(features, shape)));
  }
  /** A text model's class probabilities for `texts` (tokenised with its own vocabulary), `texts.length × numOutputs`. */
  async predictTexts(texts) {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== "string")) {
      throw new TypeError("texts must be an array of strings");
    }
    this.#runtime.checkGeneration(this.#generation, "Model");
    return this.#runtime.untilSettledOrCrashed(this.#runtime.call(() => this.#inner.predictTexts(texts)));
  }
  /** The portable model bytes (what `kiln models import` reads). */
  async export() {
    this.#runtime.checkGeneration(this.#generation, "Model");
    return this.#runtime.untilSettledOrCrashed(Promise.resolve(this.#runtime.call(() => this.#inner.export())));
  }
}

/** A training job: returned at once by `kiln.train(...)`. */
export class TrainingJob {
  #inner;
  #done;
  /** @internal */
  constructor(inner, runtime) {
    this.#inner = inner;
    this.#done = runtime.untilSettledOrCrashed(inner.waitForTraining());
    this.#done.catch(() => {}); // failures surface through waitForTraining()
  }
  /** `"trainingjob-<uuid>"`. */
  get id() {
    return this.#inner.id;
  }
  /** `"queued" | "processing" | "completed" | "failed" | "cancelled"`. */
  status() {
    return this.#inner.status();
  }
  /** The latest progress report (undefined before the first). */
  progress() {
    return this.#inner.progress();
  }
  /** Why the job failed or was cancelled. */
  get error() {
    return this.#inner.error;
  }
  /** `{ modelId, guid }` of the trained model once completed (`guid`: the same id, the hosted-training API's name). */
  get trainedModel() {
    return this.#inner.trainedModel;
  }
  /** Calls `callback(progress)` on every progress report. */
  onProgress(callback) {
    if (typeof callback !== "function") throw new TypeError("onProgress takes a function");
    this.#inner.onProgress(callback);
  }
  /** Resolves with the TrainRunInfo; rejects with an Error (with `status`) on failure or cancel. */
  waitForTraining() {
    return this.#done;
  }
  /** Stops the job before its next step; it ends as "cancelled". */
  cancel() {
    this.#inner.cancel();
  }
  /** Every event (`started`, `progress`, `evaluated`, `checkpoint`) until the job ends. */
  events() {
    return eventsUntil((listener) => this.#inner.onEvent(listener), this.#done);
  }
}

/**
 * The wasm job handle's shape while a `Kiln` re-opens itself on a fresh wasm instance: the job
 * is queued until then, its listeners and a cancel are handed on, and its failure to start is
 * its error.
 */
class DeferredJob {
  #id;
  #job = null;
  #failure = null;
  #cancelled = false;
  #listeners = [];
  #waiting;
  constructor(id, start) {
    this.#id = id;
    this.#waiting = start.then(
      (job) => {
        this.#job = job;
        for (const [kind, callback] of this.#listeners) job[kind](callback);
        if (this.#cancelled) job.cancel();
        return job.waitForTraining();
      },
      (error) => {
        this.#failure = error;
        throw error;
      },
    );
    // Whoever never waits still gets the failure from status()/error, not an unhandled rejection.
    this.#waiting.catch(() => {});
  }
  get id() {
    return this.#id;
  }
  status() {
    return this.#job?.status() ?? (this.#failure ? "failed" : "queued");
  }
  progress() {
    return this.#job?.progress();
  }
  get error() {
    return this.#job?.error ?? this.#failure?.message;
  }
  get trainedModel() {
    return this.#job?.trainedModel;
  }
  onProgress(callback) {
    this.#job ? this.#job.onProgress(callback) : this.#listeners.push(["onProgress", callback]);
  }
  onEvent(callback) {
    this.#job ? this.#job.onEvent(callback) : this.#listeners.push(["onEvent", callback]);
  }
  cancel() {
    this.#job ? this.#job.cancel() : (this.#cancelled = true);
  }
  waitForTraining() {
    return this.#waiting;
  }
}

/**
 * The entry point: a backend, a model store, and the job API. An entry module (`kiln`,
 * `kiln/cpu`) exports a subclass made by `defineKiln` that knows its wasm builds.
 */
export class Kiln {
  #inner;
  #runtime;
  #generation;
  #reopening = null;
  #open;
  #adapterName;
  /** @internal */
  constructor(inner, runtime, open, adapterName) {
    this.#inner = inner;
    this.#runtime = runtime;
    this.#generation = runtime.generation;
    this.#open = open;
    this.#adapterName = adapterName;
  }

  /**
   * @internal `Kiln.create` of an entry: `entry` names its wasm `builds` (`cpu`, `webgpu`: glue
   * and wasm URL loaders) and `createWorker` (its Web Worker, written where bundlers see it).
   */
  static async _create(options, entry) {
    if (options === null || typeof options !== "object") throw new TypeError("Kiln.create takes an options object");
    const { backend = "auto", store, storeDir, worker = false, limits } = options;
    if (limits !== undefined && (limits === null || typeof limits !== "object")) {
      throw new TypeError("limits must be an object such as { maxParameters: 200000000 }");
    }
    if (worker) {
      const { WorkerKiln } = await import("./worker-proxy.js");
      return WorkerKiln.create({ backend, store, storeDir, limits }, entry.createWorker);
    }
    // The backend is chosen first (the adapter probe takes milliseconds), so only the build it
    // needs is fetched.
    const choice = await chooseBackend(backend, entry);
    const runtime = await runtimeFor(choice.kind, entry.builds);
    if (limits !== undefined) {
      runtime.call(() => runtime.WasmKiln.setLimits(limits));
      runtime.limits = limits;
    }
    const modelStore = store ?? (await defaultStore({ dir: storeDir }));
    const open = () =>
      runtime.untilSettledOrCrashed(runtime.call(() => runtime.WasmKiln.open(choice.kind, modelStore, choice.reason)));
    return new this(await open(), runtime, open, choice.adapterName);
  }

  /** @internal `Kiln.connect` of an entry: local predictions use that entry's `Kiln`. */
  static async _connect(url, options) {
    const { RemoteKiln } = await import("./remote.js");
    return RemoteKiln.connect(url, options, (localOptions) => this.create(localOptions));
  }

  /** The wasm Kiln on the live instance, re-opened there after a crash. */
  async #live() {
    const runtime = this.#runtime;
    runtime.restartIfCrashed();
    while (this.#generation !== runtime.generation) {
      const generation = runtime.generation;
      this.#reopening ??= this.#open().finally(() => {
        this.#reopening = null;
      });
      const inner = await this.#reopening;
      if (generation === runtime.generation) {
        this.#inner = inner;
        this.#generation = generation;
      }
    }
    return this.#inner;
  }

  /** Runs `fn(inner)` on the live instance: a trap becomes an Error, a hang a rejection. */
  async #call(fn) {
    const inner = await this.#live();
    return this.#runtime.untilSettledOrCrashed(Promise.resolve(this.#runtime.call(() => fn(inner))));
  }

  /** `{ kind: "webgpu" | "cpu", adapter?, reason?, build }`: which backend is in use, why, and which wasm build runs it. */
  get backend() {
    const backend = this.#inner.backend;
    // wgpu's adapter name is empty in browsers; the JS adapter info (vendor, architecture) is not.
    if (backend.adapter && this.#adapterName && !backend.adapter.trim().startsWith(this.#adapterName)) {
      backend.adapter = `${this.#adapterName} ${backend.adapter.trim()}`;
    }
    backend.build = this.#runtime.name;
    return backend;
  }

  /** Resolves if `config` is valid; rejects with the validator's Error (field path, value, what is allowed). */
  async validateConfig(config) {
    this.#runtime.call(() => this.#runtime.WasmKiln.validateConfig(config));
  }

  /** Bytes of wasm linear memory in use by this Kiln's module (it only grows; watch it across epochs). */
  async memoryBytes() {
    return this.#runtime.call(() => this.#runtime.WasmKiln.memoryBytes());
  }

  /**
   * Starts training and returns the job at once. A bad config or bad data fails the job (as in
   * worker and remote mode): `status()` is "failed" and `waitForTraining()` rejects with the
   * Error naming the field. `{ resumable: true }` (CPU backend) keeps the job's latest
   * checkpoint (IndexedDB in browsers), so `kiln.resume(job.id)` continues it after a reload.
   */
  train(config, data, options = {}) {
    if (options === null || typeof options !== "object") throw new TypeError("train's options must be an object");
    if (!options.resumable) return this.#train(config, data, undefined);
    const jobId = `trainingjob-${crypto.randomUUID()}`;
    return this.#kept(config, data, jobId, undefined);
  }

  /**
   * Continues a resumable job (`train(config, data, { resumable: true })`) from its latest
   * checkpoint — after a page reload, say — under the same id. `data` must be the data it was
   * started with (a job on a built-in or URL source needs none). With `deterministic: true` it
   * ends with the weights of an uninterrupted run.
   */
  async resume(jobId, data) {
    if (typeof jobId !== "string") throw new TypeError("resume takes a job id (trainingjob-…)");
    const record = await (await jobStore()).get(jobId);
    if (!record) {
      throw new Error(
        `no resumable job ${jobId} here: it completed, was cancelled, was never started with { resumable: true }, or ran in another browser profile`,
      );
    }
    return this.#kept(record.config, data, jobId, record.checkpoint);
  }

  /** The resumable jobs kept here: `[{ jobId, name, epochsDone, savedAt }]`. */
  async resumableJobs() {
    return (await (await jobStore()).list()).map(({ jobId, config, epochsDone, savedAt }) => ({
      jobId,
      name: typeof config === "object" && config !== null ? config.name : undefined,
      epochsDone,
      savedAt,
    }));
  }

  /** A job whose checkpoints are kept until it completes or is cancelled. */
  #kept(config, data, jobId, resumeFrom) {
    const keeper = keepCheckpoints(jobId, config);
    const job = this.#train(config, data, jobId, { onCheckpoint: keeper.listener, resumeFrom });
    job.waitForTraining().then(
      () => keeper.settled(),
      () => {
        // A failed job keeps its checkpoint (resume may succeed with the right data); a
        // cancelled one does not.
        if (job.status() === "cancelled") keeper.settled();
      },
    );
    return job;
  }

  /** @internal Starts a job under an id handed out by the worker proxy. */
  _trainWithId(config, data, jobId) {
    return this.#train(config, data, jobId);
  }

  #train(config, data, jobId, extras = {}) {
    const runtime = this.#runtime;
    try {
      return this.#start(config, data, jobId, extras);
    } catch (error) {
      if (error instanceof Error) error.status = "failed";
      const id = jobId ?? `trainingjob-${crypto.randomUUID()}`;
      return new TrainingJob(new DeferredJob(id, Promise.reject(error)), runtime);
    }
  }

  #start(config, data, jobId, { onCheckpoint, resumeFrom } = {}) {
    const runtime = this.#runtime;
    const init = typeof config === "object" && config !== null ? config.model?.init_from : undefined;
    let weights;
    if (init && (init.bytes !== undefined || init.url !== undefined)) {
      // model.init_from's weights come as bytes or from a URL: fetched first, then handed over.
      const { bytes, url, ...rest } = init;
      config = { ...config, model: { ...config.model, init_from: rest } };
      weights = bytes !== undefined ? Promise.resolve(initBytes(bytes)) : fetchInitWeights(url);
    }
    // The built-in digits are fetched first too, when the job trains on them and the module has none yet.
    const digits = runtime.call(() => runtime.WasmKiln.needsDigits(config, data)) ? fetchDigits() : undefined;
    if (weights !== undefined || digits !== undefined) {
      const id = jobId ?? `trainingjob-${crypto.randomUUID()}`;
      const start = Promise.all([weights, digits]).then(([w, d]) =>
        this.#live().then((inner) =>
          runtime.call(() => {
            if (d !== undefined) provideDigits(runtime, d);
            return inner.train(config, data, id, w, onCheckpoint, resumeFrom);
          }),
        ),
      );
      return new TrainingJob(new DeferredJob(id, start), runtime);
    }
    runtime.restartIfCrashed();
    if (this.#generation === runtime.generation) {
      return new TrainingJob(
        runtime.call(() => this.#inner.train(config, data, jobId, undefined, onCheckpoint, resumeFrom)),
        runtime,
      );
    }
    // The wasm instance was restarted: the config is checked now, the job starts once this
    // Kiln is open on the new instance.
    runtime.call(() => runtime.WasmKiln.validateConfig(config));
    const id = jobId ?? `trainingjob-${crypto.randomUUID()}`;
    const start = this.#live().then((inner) =>
      runtime.call(() => inner.train(config, data, id, undefined, onCheckpoint, resumeFrom)),
    );
    return new TrainingJob(new DeferredJob(id, start), runtime);
  }

  /**
   * Joins a federation on a `kiln serve` server (`url`) and takes part in its rounds, training
   * on this Kiln's backend: `{ federation: "fed-…", token, data, stateFile?, participant?,
   * pollMs?, retryForSecs? }`. Only model updates leave the device (see `Federation`).
   */
  async joinFederation(url, options) {
    const { Federation } = await import("./federation.js");
    return Federation.join(this, url, options);
  }

  /** @internal One federated round on this Kiln's backend (`Federation` calls it). */
  _trainRound(global, data, onEvent) {
    return this.#call((inner) => inner.trainRound(global, data, onEvent));
  }

  /**
   * @internal A client's secrets and steps for one securely aggregated round (`Federation`
   * calls it): an object whose methods (`publicKeys`, `sealShares`, `maskedUpdate`, `reveal`)
   * resolve with their results.
   */
  async _secureRound(threshold, clipNorm) {
    await this.#live();
    const runtime = this.#runtime;
    const generation = runtime.generation;
    const round = runtime.call(() => new runtime.glue.SecureRound(threshold, clipNorm));
    const call = (method, args) => {
      runtime.checkGeneration(generation, "secure round");
      return runtime.call(() => round[method](...args));
    };
    return {
      publicKeys: async () => call("publicKeys", []),
      sealShares: async (...args) => call("sealShares", args),
      maskedUpdate: async (...args) => call("maskedUpdate", args),
      reveal: async (...args) => call("reveal", args),
    };
  }

  /** @internal Fault injection for Kiln's own recovery tests (`"now"` or `"job"`). */
  async _injectPanic(place) {
    return this.#call(() => this.#runtime.WasmKiln._injectPanic(place));
  }

  /** A model from the store (id), a URL, or exported bytes (Uint8Array). */
  async preloadedModel(source) {
    const kind = typeof source === "string" ? modelSource(source) : "bytes";
    if (kind === "invalid") {
      throw new TypeError(
        `preloadedModel: ${JSON.stringify(source).slice(0, 80)} is neither a model id (letters, digits, \`-\`, \`_\`) nor a URL (https:, http:, blob:, data:, or a path starting with /, ./ or ../)`,
      );
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
    return new Model(await this.#call((inner) => inner.preloadedModel(source)), this.#runtime);
  }

  /** Metadata of every stored model. */
  listModels() {
    return this.#call((inner) => inner.listModels());
  }
  /** Deletes a stored model; resolves true if it existed. */
  deleteModel(modelId) {
    return this.#call((inner) => inner.deleteModel(modelId));
  }
  /** Stores exported model bytes; resolves with the model id. An id already stored is refused unless `{ force: true }`. */
  importModel(bytes, { force = false } = {}) {
    if (!(bytes instanceof Uint8Array))
      return Promise.reject(new TypeError("importModel takes the model's bytes as a Uint8Array"));
    return this.#call((inner) => inner.importModel(bytes, Boolean(force)));
  }
}

/**
 * The `Kiln` class of an entry module: `Kiln.create` loads only the builds named in `entry`
 * (`{ name, builds: { cpu, webgpu? }, createWorker }`), `Kiln.connect` predicts with them.
 */
export function defineKiln(entry) {
  return class extends Kiln {
    /**
     * Opens Kiln. `backend`: "webgpu" | "cpu" | "auto" (default: the fastest available; a
     * software WebGPU adapter counts as slower than CPU-wasm). Only the wasm build the backend
     * needs is downloaded. `store`: a model store object; default IndexedDB in browsers, memory
     * in Node, or files when `storeDir` is given. `worker: true` runs training in a dedicated
     * Web Worker behind the same API. `limits` raises or lowers the input limits of this wasm
     * instance (the book's "Limits and security" chapter), e.g. `{ maxParameters: 200_000_000 }`.
     */
    static create(options = {}) {
      return this._create(options, entry);
    }

    /**
     * Connects to a `kiln serve` server (`url`, e.g. "http://127.0.0.1:7878"; `token` when the
     * server has tokens): the same API as `create()`, with training on the server. Models are
     * downloaded to predict locally in wasm (cached in `store`: IndexedDB in browsers by default).
     */
    static connect(url, options = {}) {
      return this._connect(url, options);
    }
  };
}
