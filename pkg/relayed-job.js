// A training job whose state arrives as messages (from a Web Worker, or a server's event
// stream): the same methods as the in-page `TrainingJob`.

/** An Error as plain data (to post it across a worker boundary). */
export function serializeError(e) {
  return { message: e?.message ?? String(e), name: e?.name ?? "Error", status: e?.status, phase: e?.phase };
}

/** The Error `serializeError` described. */
export function reviveError(data) {
  const error = data.name === "TypeError" ? new TypeError(data.message) : new Error(data.message);
  if (data.status) error.status = data.status;
  if (data.phase) error.phase = data.phase;
  return error;
}

/**
 * Every event until `done` settles: `subscribe(listener)` registers the listener that receives
 * them (shared by all job kinds' `events()`).
 */
export async function* eventsUntil(subscribe, done) {
  const queue = [];
  let wake = null;
  let finished = false;
  subscribe((event) => {
    queue.push(event);
    wake?.();
  });
  done.then(
    () => {
      finished = true;
      wake?.();
    },
    () => {
      finished = true;
      wake?.();
    },
  );
  while (true) {
    if (queue.length > 0) {
      yield queue.shift();
      continue;
    }
    if (finished) return;
    await new Promise((resolve) => {
      wake = resolve;
    });
    wake = null;
  }
}

/** A job whose state is relayed to it by `_event(event, status)` and `_finish({ status, info?, error? })`. */
export class RelayedTrainingJob {
  #cancel;
  #status = "queued";
  #progress;
  #error;
  #info;
  #listeners = [];
  #eventListeners = [];
  #done;
  #settle;
  constructor(id, cancel, started) {
    this.#cancel = cancel;
    this.id = id;
    this.#done = new Promise((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.#done.catch(() => {});
    started.catch((error) => this._finish({ status: "failed", error: serializeError(error) }));
  }
  /** @internal An engine event, with the job's status after it. */
  _event(event, status) {
    this.#status = status;
    if (event.event === "progress") {
      const { event: _, ...progress } = event;
      this.#progress = progress;
      for (const listener of this.#listeners)
        try {
          listener(progress);
        } catch {
          /* keep going */
        }
    }
    for (const listener of this.#eventListeners) listener(event);
  }
  /** @internal The status alone changed (queued → processing, …). */
  _status(status) {
    this.#status = status;
  }
  /** @internal The job ended. */
  _finish({ status, info, error }) {
    if (this.#info || this.#error) return;
    this.#status = status;
    if (info) {
      this.#info = info;
      this.#settle.resolve(info);
    } else {
      this.#error = error.message;
      this.#settle.reject(reviveError({ ...error, status }));
    }
    this.#eventListeners = [];
  }
  /** `"queued" | "processing" | "completed" | "failed" | "cancelled"`. */
  status() {
    return this.#status;
  }
  /** The latest progress report (undefined before the first). */
  progress() {
    return this.#progress;
  }
  /** Why the job failed or was cancelled. */
  get error() {
    return this.#error;
  }
  /** `{ modelId, guid }` of the trained model once completed (`guid`: the same id, the hosted-training API's name). */
  get trainedModel() {
    return this.#info ? { modelId: this.#info.modelId, guid: this.#info.modelId } : undefined;
  }
  /** Calls `callback(progress)` on every progress report. */
  onProgress(callback) {
    if (typeof callback !== "function") throw new TypeError("onProgress takes a function");
    this.#listeners.push(callback);
  }
  /** Resolves with the TrainRunInfo; rejects with an Error (with `status`) on failure or cancel. */
  waitForTraining() {
    return this.#done;
  }
  /** Stops the job before its next step; it ends as "cancelled". */
  cancel() {
    this.#cancel();
  }
  /** Every event (`started`, `progress`, `evaluated`, `checkpoint`) until the job ends. */
  events() {
    return eventsUntil((listener) => this.#eventListeners.push(listener), this.#done);
  }
}
