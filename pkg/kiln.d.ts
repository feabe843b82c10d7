import type { ModelStore } from "./store.js";
export { ModelStore, MemoryStore, IndexedDbStore, DirectoryStore, defaultStore } from "./store.js";

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
  /** Input limits of this wasm instance (README: "Limits"), e.g. `{ maxParameters: 200_000_000 }`. */
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

export type Task = "classification" | "regression";
export type Metric =
  | "loss" | "accuracy" | "precision_macro" | "precision_weighted" | "recall_macro" | "recall_weighted"
  | "f1_macro" | "f1_weighted" | "confusion_matrix" | "mse" | "mae" | "r2";

export type LayerSpec =
  | { type: "linear"; out?: number; bias?: boolean }
  | { type: "conv2d"; channels: number; kernel: number; stride?: number; padding?: number }
  | { type: "max_pool2d"; kernel: number; stride?: number }
  | { type: "flatten" | "relu" | "gelu" | "tanh" | "sigmoid" | "batch_norm" | "layer_norm" }
  | { type: "dropout"; prob: number };

export type LrScheduler =
  | { kind: "constant" }
  | { kind: "step"; step_size: number; gamma?: number }
  | { kind: "cosine"; min_lr?: number }
  | { kind: "linear_warmup"; warmup_steps: number };

/** The run configuration: the same schema as Kiln's YAML files (every key optional). */
export interface TrainConfig {
  name?: string;
  seed?: number;
  task?: Task;
  deterministic?: boolean;
  fast_dev_run?: boolean;
  data?: {
    source?: "digits" | "fashion-mnist" | "csv" | "idx" | "inline";
    path?: string;
    label_column?: string | number;
    header?: boolean;
    images?: string;
    labels?: string;
    split?: [number, number, number];
    shuffle?: boolean;
    normalize?: boolean;
    limit?: number;
  };
  model?: { preset?: "mlp" | "cnn"; hidden?: number[]; dropout?: number; layers?: LayerSpec[] };
  training?: {
    num_passes?: number;
    epochs?: number;
    batch_size?: number;
    drop_last?: boolean;
    weight_optimization?: {
      optimization_method?: "sgd" | "momentum" | "adam" | "adamw";
      learning_rate?: number;
      weight_decay?: number;
      momentum?: number;
      betas?: [number, number];
    };
    lr_scheduler?: LrScheduler;
    gradient_accumulation_steps?: number;
    gradient_max_norm?: number;
    precision?: "f32" | "f16";
    log_every_steps?: number;
  };
  validation?: { every?: number; metrics?: Metric[] };
  early_stopping?: {
    tasks: { metric: string; mode: "min" | "max"; delta?: number; grace_period?: number; init_best_score?: number }[];
    patience?: number;
    mode?: "any" | "all";
  };
  checkpoint?: { every_epochs?: number; save_top_k?: number; main_metric?: string };
  /** Labels a `kiln serve` worker must offer to claim the job (remote mode; ignored locally). */
  resources?: { labels?: Record<string, string> };
}

/**
 * Training data handed over directly. `features` are row-major samples; a `Uint8Array` or
 * `Uint8ClampedArray` (image bytes, canvas pixels) is read as its values 0–255.
 */
export type TrainData =
  | { features: Float32Array | Uint8Array | Uint8ClampedArray; labels: Int32Array | Float32Array; shape: number[] }
  | { csv: string };

export type JobStatus = "queued" | "processing" | "completed" | "failed" | "cancelled";

/** A progress report. */
export interface Progress {
  epoch: number;
  epochs: number;
  step: number;
  totalSteps: number;
  loss: number;
  learningRate: number;
  gradNorm?: number | null;
  samplesPerSec: number;
  etaSeconds: number;
  /** Training time so far in seconds, resumed sessions included. */
  elapsedSeconds: number;
  /** Latest validation metrics: val_loss, val_accuracy, ... */
  metrics: Record<string, number>;
}

/** Metrics at one evaluation. */
export interface HistoryEntry {
  epoch: number;
  step: number;
  metrics: Record<string, number>;
}

/** Events from a running job. */
export type TrainEvent =
  | { event: "started"; total_steps: number; steps_per_epoch: number; start_epoch: number }
  | ({ event: "progress" } & Progress)
  | ({ event: "evaluated" } & HistoryEntry)
  | { event: "checkpoint"; epoch: number; step: number };

/** The result of a completed job. */
export interface TrainRunInfo {
  jobId: string;
  modelId: string;
  name: string;
  backend: string;
  bestMetrics: Record<string, number>;
  bestEpoch?: number | null;
  /** Latest validation metrics and the saved model's test metrics (test_*). */
  finalMetrics: Record<string, number>;
  confusionMatrix?: number[][] | null;
  bestModelPath?: string | null;
  history: HistoryEntry[];
  stoppedEarly: boolean;
  epochsRun: number;
  steps: number;
  durationSecs: number;
}

/** A failed or cancelled job's rejection. */
export interface TrainingError extends Error {
  status: "failed" | "cancelled";
}

/** Metadata of a stored model. */
export interface ModelInfo {
  guid: string;
  name: string;
  task: Task;
  inputShape: number[];
  numOutputs: number;
  createdUnixMs: number;
  metrics: Record<string, number>;
}

export class Model {
  readonly guid: string;
  readonly info: ModelInfo;
  /** `rows × numOutputs` class probabilities (classification) or values (regression). */
  predict(features: Float32Array, shape?: number[]): Promise<Float32Array>;
  /** Portable bytes, readable by `kiln models import` and `preloadedModel`. */
  export(): Promise<Uint8Array>;
}

export class TrainingJob {
  readonly id: string;
  status(): JobStatus;
  progress(): Progress | undefined;
  readonly error: string | undefined;
  readonly trainedModel: { guid: string } | undefined;
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

export class Kiln {
  static create(options?: KilnOptions): Promise<Kiln>;
  /** The same API with jobs trained by a `kiln serve` server; `backend` is then `{ kind: "remote", url, server, version }`. */
  static connect(url: string | URL, options?: ConnectOptions): Promise<Kiln>;
  readonly backend: BackendInfo;
  /** Returns at once; throws an Error naming the field on a bad config. */
  train(config?: TrainConfig | string, data?: TrainData): TrainingJob;
  /** Resolves if the config is valid; rejects with the validator's Error (field path, value, allowed). */
  validateConfig(config?: TrainConfig | string): Promise<void>;
  /** Bytes of wasm linear memory of the module running the jobs (the worker's, in worker mode). */
  memoryBytes(): Promise<number>;
  /** Stops the worker and fails its jobs (worker mode only). */
  terminate?(): void;
  preloadedModel(source: string | Uint8Array): Promise<Model>;
  listModels(): Promise<ModelInfo[]>;
  deleteModel(guid: string): Promise<boolean>;
  importModel(bytes: Uint8Array, options?: { force?: boolean }): Promise<string>;
}

/** The wasm builds this page or process has loaded so far (each is downloaded on first use). */
export function loadedBuilds(): ("cpu" | "webgpu")[];
