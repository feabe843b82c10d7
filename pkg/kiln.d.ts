import type { ModelStore } from "./store.js";
import type { JobStatus, ModelInfo, Progress, TrainConfig, TrainEvent, TrainRunInfo } from "./types.js";
export { ModelStore, MemoryStore, IndexedDbStore, DirectoryStore, defaultStore } from "./store.js";
// The config, event, result and model-info types, generated from the Rust types (`make types`).
export type * from "./types.js";

/** Options of `Kiln.create`. */
export interface KilnOptions {
  /** "auto" (default) picks the fastest available; a software WebGPU adapter loses to CPU-wasm. */
  backend?: "auto" | "webgpu" | "cpu";
  /** Where trained models go (default: IndexedDB in browsers, memory in Node). */
  store?: ModelStore;
  /** Node: keep models as files in this directory. */
  storeDir?: string;
  /** Run training in a dedicated Web Worker (browsers). */
  worker?: boolean;
  /** Input limits of this wasm instance (the book's "Limits and security" chapter), e.g. `{ maxParameters: 200_000_000 }`. */
  limits?: Record<string, number>;
}

/** The backend in use. */
export interface BackendInfo {
  kind: "webgpu" | "cpu" | "remote";
  /** The wasm build running it: "cpu" (the CPU-only module) or "webgpu" (WebGPU + CPU). */
  build?: "cpu" | "webgpu";
  /** The WebGPU adapter's name and API. */
  adapter?: string;
  /** Why "auto" chose the CPU. */
  reason?: string;
  /** Remote mode: the server's URL, backend and version. */
  url?: string;
  server?: string;
  version?: string;
}

/**
 * Training data handed over directly. `features` are row-major samples; a `Uint8Array` or
 * `Uint8ClampedArray` (image bytes, canvas pixels) is read as its values 0–255.
 */
export type TrainData =
  | { features: Float32Array | Uint8Array | Uint8ClampedArray; labels: Int32Array | Float32Array; shape: number[] }
  | { csv: string }
  /** Labelled texts, tokenised as `config.data.text` says (the vocabulary is built from the training split). */
  | { texts: string[]; labels: string[] };

/** A failed or cancelled job's rejection. */
export interface TrainingError extends Error {
  status: "failed" | "cancelled";
}

export class Model {
  readonly modelId: string;
  readonly info: ModelInfo;
  /** `rows × numOutputs` class probabilities (classification) or values (regression). */
  predict(features: Float32Array, shape?: number[]): Promise<Float32Array>;
  /** A text model's class probabilities for `texts`, tokenised with the vocabulary it was trained with. */
  predictTexts(texts: string[]): Promise<Float32Array>;
  /** Portable bytes, readable by `kiln models import` and `preloadedModel`. */
  export(): Promise<Uint8Array>;
}

export class TrainingJob {
  readonly id: string;
  status(): JobStatus;
  progress(): Progress | undefined;
  readonly error: string | undefined;
  /** `guid` is the same id as `modelId`, under the hosted-training API's name. */
  readonly trainedModel: { modelId: string; guid: string } | undefined;
  onProgress(callback: (progress: Progress) => void): void;
  /** Resolves with the result; rejects with a TrainingError. */
  waitForTraining(): Promise<TrainRunInfo>;
  cancel(): void;
  events(): AsyncGenerator<TrainEvent, void, undefined>;
}

/** Options of `Kiln.connect`. */
export interface ConnectOptions {
  /** A bearer token, when the server has `--token-file`. */
  token?: string;
  /** Store that caches downloaded models (default: IndexedDB in browsers, memory in Node). */
  store?: ModelStore;
  /** Directory store for the cache (Node). */
  storeDir?: string;
  /** Backend of the local wasm that predicts with downloaded models (default "auto"). */
  backend?: "auto" | "webgpu" | "cpu";
}

/** Options of `kiln.joinFederation`. */
export interface JoinFederationOptions {
  /** The federation's id (`fed-<uuid>`). */
  federation: string;
  /** A join token for this federation (or the admin token; never hand that to a browser). */
  token?: string;
  /** This client's samples, read the way the federation's config reads data. They never leave the device. */
  data:
    | { features: Float32Array | Uint8Array | Uint8ClampedArray; labels: Int32Array | Float32Array; shape: number[] }
    | { csv: string };
  /** Node: the JSON file that keeps this client's participant id across restarts (browsers use IndexedDB). */
  stateFile?: string;
  /** Rejoin as this participant id (default: the one kept, else a new one). */
  participant?: string;
  /** Milliseconds between check-ins while waiting for a round (default 300). */
  pollMs?: number;
  /** How long an unreachable server is retried before the client gives up (default 120 s). */
  retryForSecs?: number;
}

/** What `waitForCompletion()` resolves with. */
export interface FederationResult {
  status: "completed";
  federation: string;
  participant: string;
  rounds: number;
  /** The server's result: `{ modelId, guid, rounds, finalMetrics }`. */
  result: { modelId: string; guid: string; rounds: number; finalMetrics: Record<string, number> };
  /** The final model's id in this Kiln's store. */
  modelId: string;
}

/** A round that closed, as this client saw it. */
export interface FederationRound {
  round: number;
  /** Whether this client's update was in the round. */
  participated: boolean;
  examples?: number;
  metrics?: Record<string, number>;
}

/** A federation this client takes part in (`kiln.joinFederation`). */
export interface Federation {
  readonly id: string;
  readonly participant: string;
  /** Whether this device had joined before and came back as the same participant. */
  readonly rejoined: boolean;
  readonly rounds: number | undefined;
  readonly error: string | undefined;
  status(): "joining" | "waiting" | "training" | "completed" | "failed" | "cancelled" | "left";
  round(): number;
  onRound(callback: (round: FederationRound) => void): void;
  /** `roundStarted`, `local`, `updateSent`, `updateRefused`, `roundClosed`, `warning`, then the end. */
  events(): AsyncGenerator<{ type: string; round?: number; [key: string]: unknown }, void, undefined>;
  /** Rejects with an Error whose `status` is "failed", "cancelled" or "left" unless the federation completes. */
  waitForCompletion(): Promise<FederationResult>;
  /** The latest global model (the final one once completed), to predict locally. */
  model(): Promise<Model>;
  leave(): void;
}

export class Kiln {
  static create(options?: KilnOptions): Promise<Kiln>;
  /** The same API with jobs trained by a `kiln serve` server; `backend` is then `{ kind: "remote", url, server, version }`. */
  static connect(url: string | URL, options?: ConnectOptions): Promise<Kiln>;
  readonly backend: BackendInfo;
  /** Returns the job at once (in every mode). A bad config or bad data fails it: `status()` is "failed" and `waitForTraining()` rejects with an Error naming the field. */
  train(config?: TrainConfig | string, data?: TrainData, options?: { resumable?: boolean }): TrainingJob;
  /** Continues a `{ resumable: true }` job from its latest checkpoint (local CPU Kilns). */
  resume?(jobId: string, data?: TrainData): Promise<TrainingJob>;
  /** The resumable jobs kept in this browser (IndexedDB) or process. */
  resumableJobs?(): Promise<{ jobId: string; name?: string; epochsDone: number; savedAt: number }[]>;
  /** Resolves if the config is valid; rejects with the validator's Error (field path, value, allowed). */
  validateConfig(config?: TrainConfig | string): Promise<void>;
  /** Bytes of wasm linear memory of the module running the jobs (the worker's, in worker mode). */
  memoryBytes(): Promise<number>;
  /** Stops the worker and fails its jobs (worker mode only). */
  terminate?(): void;
  preloadedModel(source: string | Uint8Array): Promise<Model>;
  listModels(): Promise<ModelInfo[]>;
  /** Remote mode (`Kiln.connect`) only: one page of the server's training jobs. */
  listJobs?(options?: {
    status?: string;
    tag?: string;
    limit?: number;
    after?: string | null;
    order?: "asc" | "desc";
  }): Promise<{ jobs: object[]; nextCursor: string | null }>;
  /** Remote mode (`Kiln.connect`) only: one page of the server's uploaded datasets. */
  listDatasets?(options?: {
    limit?: number;
    after?: string | null;
    order?: "asc" | "desc";
  }): Promise<{ datasets: object[]; nextCursor: string | null }>;
  deleteModel(modelId: string): Promise<boolean>;
  importModel(bytes: Uint8Array, options?: { force?: boolean }): Promise<string>;
  /** Takes part in a federation on a `kiln serve` server, training locally (not in remote mode). */
  joinFederation?(url: string | URL, options: JoinFederationOptions): Promise<Federation>;
}

/** The wasm builds this page or process has loaded so far (each is downloaded on first use). */
export function loadedBuilds(): ("cpu" | "webgpu")[];
