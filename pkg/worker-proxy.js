// `Kiln.create({ worker: true })`: the same API, with training running in a dedicated Web
// Worker so the page's main thread stays free. This is the main thread's proxy; the worker runs
// `worker.js` (or `cpu-worker.js` for `kiln/cpu`), served by `worker-host.js`.

import { RelayedTrainingJob, serializeError, reviveError } from "./relayed-job.js";

/** Main-thread proxy of a model living in the worker. */
class WorkerModel {
  #call;
  #handle;
  constructor(call, { handle, modelId, info }) {
    this.#call = call;
    this.#handle = handle;
    this.modelId = modelId;
    this.info = info;
  }
  predict(features, shape) {
    if (!(features instanceof Float32Array)) {
      return Promise.reject(new TypeError("features must be a Float32Array of row-major samples"));
    }
    return this.#call("predict", { handle: this.#handle, features, shape });
  }
  predictTexts(texts) {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== "string")) {
      return Promise.reject(new TypeError("texts must be an array of strings"));
    }
    return this.#call("predictTexts", { handle: this.#handle, texts });
  }
  export() {
    return this.#call("export", { handle: this.#handle });
  }
}

/** `Kiln` with training in a dedicated Web Worker; same methods, same results. */
export class WorkerKiln {
  #worker;
  #pending = new Map();
  #jobs = new Map();
  #next = 0;
  backend;

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => this.#receive(data);
    worker.onerror = (event) => this.#crash(new Error(`the Kiln worker crashed: ${event.message ?? "unknown error"}`));
  }

  /** Starts the entry's worker (`createWorker()`) and opens a Kiln in it. */
  static async create({ backend, store, storeDir, limits }, createWorker) {
    if (typeof Worker === "undefined") throw new Error("worker: true needs Web Workers (a browser); omit it in Node");
    if (store) throw new TypeError("a custom store cannot be passed to a worker; use the default IndexedDB store");
    const proxy = new WorkerKiln(createWorker());
    proxy.backend = await proxy.#call("create", { backend, storeDir, limits });
    return proxy;
  }

  #call = (op, args) => {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, op, args });
    });
  };

  #receive(message) {
    if (message.kind === "reply") {
      const pending = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.ok) pending?.resolve(message.value);
      else pending?.reject(reviveError(message.error));
    } else if (message.kind === "event") {
      this.#jobs.get(message.jobId)?._event(message.event, message.status);
    } else if (message.kind === "done") {
      this.#jobs.get(message.jobId)?._finish(message);
      this.#jobs.delete(message.jobId);
    }
  }

  #crash(error) {
    for (const { reject } of this.#pending.values()) reject(error);
    this.#pending.clear();
    for (const job of this.#jobs.values()) job._finish({ status: "failed", error: serializeError(error) });
    this.#jobs.clear();
  }

  /** Starts training in the worker; returns the job at once. Config errors reject waitForTraining. */
  train(config, data, options = {}) {
    if (options?.resumable) {
      throw new Error("resumable jobs run in a local Kiln (Kiln.create without worker: true) for now");
    }
    const jobId = `trainingjob-${crypto.randomUUID()}`;
    const started = this.#call("train", { config, data, jobId });
    const job = new RelayedTrainingJob(jobId, () => this.#call("cancel", { jobId }), started);
    this.#jobs.set(jobId, job);
    return job;
  }

  async preloadedModel(source) {
    return new WorkerModel(this.#call, await this.#call("preloadedModel", { source }));
  }
  validateConfig(config) {
    return this.#call("validateConfig", { config });
  }
  memoryBytes() {
    return this.#call("memoryBytes", {});
  }
  listModels() {
    return this.#call("listModels", {});
  }
  deleteModel(modelId) {
    return this.#call("deleteModel", { modelId });
  }
  importModel(bytes, { force = false } = {}) {
    return this.#call("importModel", { bytes, force });
  }
  /** Joins a federation; each round trains in the worker (see `Kiln.joinFederation`). */
  async joinFederation(url, options) {
    const { Federation } = await import("./federation.js");
    return Federation.join(this, url, options);
  }
  /** @internal A secure round's secrets, kept in the worker; the methods run there. */
  async _secureRound(threshold, clipNorm) {
    const handle = await this.#call("secureRound", { threshold, clipNorm });
    const call = (method, args) => this.#call("secureStep", { handle, method, args });
    return {
      publicKeys: () => call("publicKeys", []),
      sealShares: (...args) => call("sealShares", args),
      maskedUpdate: (...args) => call("maskedUpdate", args),
      reveal: (...args) => call("reveal", args),
    };
  }
  /** @internal One federated round in the worker (its engine events stay there). */
  _trainRound(global, data) {
    return this.#call("trainRound", { global, data });
  }
  /** Stops the worker (and every job in it). */
  terminate() {
    this.#crash(new Error("the Kiln worker was terminated"));
    this.#worker.terminate();
  }
}
