// `Kiln.connect(url, { token })`: the same API as `Kiln.create()`, with jobs trained by a
// `kiln serve` server. Data is uploaded as a dataset, the job's events are read from the
// server's event stream with fetch (so the token travels in a header) and the stream is resumed
// with Last-Event-ID when it drops. Models are downloaded and predict locally in wasm.
import { RelayedTrainingJob } from "./relayed-job.js";
import { serverEvents } from "./sse.js";
import { problemError } from "./problem.js";

const FINAL = new Set(["completed", "failed", "cancelled"]);
/** How long a dropped event stream is retried before the job is given up (ms). */
const RECONNECT_FOR_MS = 120_000;

/** The little-endian bytes of a typed array. */
function bytesOf(array) {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** `{ features, labels, shape }` as a safetensors file (what `POST /v1/datasets` takes). */
export function toSafetensors({ features, labels, shape }) {
  const featureType =
    features instanceof Float32Array
      ? "F32"
      : features instanceof Uint8Array || features instanceof Uint8ClampedArray
        ? "U8"
        : null;
  if (!featureType) throw new TypeError("data.features must be a Float32Array, Uint8Array or Uint8ClampedArray");
  const labelType = labels instanceof Int32Array ? "I32" : labels instanceof Float32Array ? "F32" : null;
  if (!labelType) throw new TypeError("data.labels must be an Int32Array (classes) or a Float32Array");
  if (!Array.isArray(shape) || shape.length < 2 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new TypeError("data.shape must be [samples, ...sample shape] of positive integers, e.g. [1797, 64]");
  }
  const f = bytesOf(features);
  const l = bytesOf(labels);
  const header = new TextEncoder().encode(
    JSON.stringify({
      features: { dtype: featureType, shape, data_offsets: [0, f.length] },
      labels: { dtype: labelType, shape: [labels.length], data_offsets: [f.length, f.length + l.length] },
    }),
  );
  const out = new Uint8Array(8 + header.length + f.length + l.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(f, 8 + header.length);
  out.set(l, 8 + header.length + f.length);
  return out;
}

/** A `kiln serve` server behind the `Kiln` API. */
export class RemoteKiln {
  #url;
  #token;
  #localOptions;
  #createLocal;
  #local = null;
  #health;

  constructor(url, token, localOptions, createLocal) {
    this.#url = url;
    this.#token = token;
    this.#localOptions = localOptions;
    this.#createLocal = createLocal;
  }

  /**
   * Connects and checks the server answers (and takes the token). `createLocal(options)` opens
   * the local wasm `Kiln` that predicts with downloaded models (the calling entry's `Kiln.create`).
   */
  static async connect(url, options, createLocal) {
    if (typeof url !== "string" && !(url instanceof URL)) {
      throw new TypeError('Kiln.connect takes the server\'s URL, e.g. "http://127.0.0.1:7878"');
    }
    if (options === null || typeof options !== "object") throw new TypeError("Kiln.connect takes an options object");
    const { token, store, storeDir, backend = "auto" } = options;
    if (token !== undefined && typeof token !== "string") throw new TypeError("token must be a string");
    let base;
    try {
      base = new URL(String(url));
    } catch {
      throw new TypeError(`Kiln.connect: ${JSON.stringify(String(url))} is not a URL`);
    }
    const kiln = new RemoteKiln(base.href.replace(/\/+$/, ""), token, { store, storeDir, backend }, createLocal);
    kiln.#health = await kiln._request("GET", "/v1/health");
    await kiln._request("GET", "/v1/datasets?limit=1"); // checks the token now, not at the first job
    return kiln;
  }

  /** @internal One API call; resolves with the JSON answer (or the Response when `raw`). */
  async _request(method, path, { json, body, type, raw = false, headers = {} } = {}) {
    const init = { method, headers: { ...headers } };
    if (this.#token) init.headers.authorization = `Bearer ${this.#token}`;
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["content-type"] = "application/json";
    } else if (body !== undefined) {
      init.body = body;
      init.headers["content-type"] = type;
    }
    let response;
    try {
      response = await fetch(this.#url + path, init);
    } catch (e) {
      throw new Error(`cannot reach the Kiln server at ${this.#url}: ${e?.cause?.message ?? e?.message ?? e}`);
    }
    if (!response.ok) throw await problemError(response, `${method} ${path}`);
    if (raw) return response;
    if (response.status === 204) return undefined;
    return response.json();
  }

  /** @internal The job's events after `lastEventId`, live, until the stream ends. */
  async *_events(jobId, lastEventId) {
    const headers = { accept: "text/event-stream" };
    if (lastEventId > 0) headers["last-event-id"] = String(lastEventId);
    const response = await this._request("GET", `/v1/jobs/${jobId}/events`, { raw: true, headers });
    yield* serverEvents(response.body);
  }

  /** @internal Uploads a job's data; resolves with the dataset id. */
  async _upload(config, data) {
    if (typeof data?.csv === "string") {
      const settings = typeof config === "object" && config !== null ? (config.data ?? {}) : {};
      const query = new URLSearchParams();
      if (settings.header !== undefined) query.set("header", String(Boolean(settings.header)));
      if (settings.label_column !== undefined) query.set("label_column", String(settings.label_column));
      const suffix = query.size > 0 ? `?${query}` : "";
      return (await this._request("POST", `/v1/datasets${suffix}`, { body: data.csv, type: "text/csv" })).id;
    }
    if (data === null || typeof data !== "object") {
      throw new TypeError("data must be { features, labels, shape } or { csv }");
    }
    if (Array.isArray(data.texts)) {
      throw new TypeError(
        "remote mode does not upload texts yet: train { texts, labels } locally " +
          "(Kiln.create), or train texts with `kiln train` on the server",
      );
    }
    const file = toSafetensors(data);
    return (await this._request("POST", "/v1/datasets", { body: file, type: "application/octet-stream" })).id;
  }

  /** The local wasm Kiln that predicts with downloaded models. */
  async #localKiln() {
    this.#local ??= this.#createLocal(this.#localOptions);
    return this.#local;
  }

  /** `{ kind: "remote", url, server }`: jobs train on the server's backend (`server`). */
  get backend() {
    return { kind: "remote", url: this.#url, server: this.#health.backend, version: this.#health.version };
  }

  /** Resolves if `config` is valid (the same validator as the server's). */
  async validateConfig(config) {
    return (await this.#localKiln()).validateConfig(config);
  }

  /** Bytes of wasm memory of the local Kiln that predicts. */
  async memoryBytes() {
    return (await this.#localKiln()).memoryBytes();
  }

  /**
   * Starts a job on the server and returns it at once: `data` (`{ features, labels, shape }` or
   * `{ csv }`) is uploaded first; without data the config's source is used (the server allows
   * only the embedded `digits`). Failures, including a refused config, reject waitForTraining().
   */
  train(config, data) {
    const id = `trainingjob-${crypto.randomUUID()}`;
    let submitted = null;
    let cancelWanted = false;
    const cancel = () => {
      cancelWanted = true;
      submitted?.then(() => this._request("POST", `/v1/jobs/${id}/cancel`)).catch(() => {});
    };
    submitted = (async () => {
      const dataset = data === undefined || data === null ? undefined : await this._upload(config, data);
      // The uploaded data replaces the config's source, as local data does in `Kiln.create()`.
      let remoteConfig = config ?? null;
      if (dataset && typeof config === "object" && config !== null) {
        const { label_column: _l, header: _h, ...rest } = config.data ?? {};
        remoteConfig = { ...config, data: { ...rest, source: "inline" } };
      }
      await this._request("POST", "/v1/jobs", { json: { id, config: remoteConfig, dataset } });
    })();
    const job = new RelayedTrainingJob(id, cancel, submitted);
    submitted
      .then(() => {
        if (cancelWanted) cancel();
        return this.#follow(job, id);
      })
      .catch((error) => job._finish({ status: "failed", error: { message: error.message, name: error.name } }));
    return job;
  }

  /** Feeds a job from its event stream until the final status, resuming dropped streams. */
  async #follow(job, id) {
    let last = 0;
    let lostSince = null;
    while (true) {
      try {
        for await (const { id: seq, event, data } of this._events(id, last)) {
          last = seq ?? last;
          lostSince = null;
          if (event === "status") {
            if (FINAL.has(data.status)) {
              if (data.status === "completed") job._finish({ status: "completed", info: data.result });
              else job._finish({ status: data.status, error: { message: data.error ?? `the job was ${data.status}` } });
              return;
            }
            job._status(data.status);
          } else if (event !== "interrupted") {
            job._event(data, "processing");
          }
        }
      } catch (error) {
        if (error.httpStatus && error.httpStatus < 500) throw error;
      }
      lostSince ??= Date.now();
      if (Date.now() - lostSince > RECONNECT_FOR_MS) {
        throw new Error(`lost the event stream of ${id} for ${RECONNECT_FOR_MS / 1000} s`);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  /**
   * A model by id (downloaded from the server once, then kept in the local store), a URL, or
   * exported bytes; it predicts locally.
   */
  async preloadedModel(source) {
    const local = await this.#localKiln();
    if (typeof source === "string" && /^[A-Za-z0-9_-]+$/.test(source)) {
      const cached = (await local.listModels()).some((m) => m.modelId === source);
      if (!cached) {
        const response = await this._request("GET", `/v1/models/${source}`, { raw: true });
        await local.importModel(new Uint8Array(await response.arrayBuffer()), { force: true });
      }
    }
    return local.preloadedModel(source);
  }

  /** The server's models. */
  listModels() {
    return this._request("GET", "/v1/models");
  }

  /**
   * One page of the server's training jobs: `{ jobs, nextCursor }`; pass `nextCursor` as
   * `after` for the next page (`null` on the last). Options: `status`, `tag` ("key:value"),
   * `limit` (1–1000, default 100), `after`, `order` ("asc", the default, or "desc").
   */
  async listJobs(options = {}) {
    const { items, nextCursor } = await this.#page("/v1/jobs", options, ["status", "tag", "limit", "after", "order"]);
    return { jobs: items, nextCursor };
  }

  /** One page of the server's uploaded datasets: `{ datasets, nextCursor }` (options as `listJobs`). */
  async listDatasets(options = {}) {
    const { items, nextCursor } = await this.#page("/v1/datasets", options, ["limit", "after", "order"]);
    return { datasets: items, nextCursor };
  }

  async #page(path, options, keys) {
    if (options === null || typeof options !== "object") throw new TypeError("the list options must be an object");
    const query = new URLSearchParams();
    for (const key of keys)
      if (options[key] !== undefined && options[key] !== null) query.set(key, String(options[key]));
    const response = await this._request("GET", `${path}?${query}`, { raw: true });
    return { items: await response.json(), nextCursor: response.headers.get("x-next-cursor") };
  }

  /** Deletes a model on the server; resolves true if it existed. */
  async deleteModel(modelId) {
    try {
      await this._request("DELETE", `/v1/models/${encodeURIComponent(modelId)}`);
      return true;
    } catch (error) {
      if (error.httpStatus === 404) return false;
      throw error;
    }
  }

  /** Stores exported model bytes on the server; resolves with the model id. */
  async importModel(bytes, { force = false } = {}) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError("importModel takes the model's bytes as a Uint8Array");
    const answer = await this._request("POST", `/v1/models${force ? "?force=true" : ""}`, {
      body: bytes,
      type: "application/octet-stream",
    });
    return answer.modelId;
  }
}
