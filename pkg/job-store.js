// The latest checkpoint of each resumable local job (`kiln.train(config, data, { resumable:
// true })`), kept so `kiln.resume(jobId)` can continue a job after a page reload: IndexedDB in
// browsers (database `kiln-jobs`), this process's memory elsewhere.

const DATABASE = "kiln-jobs";
const TABLE = "jobs";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB request failed"));
  });
}

/** Job records (`{ jobId, config, epochsDone, savedAt, checkpoint }`) in IndexedDB. */
class IndexedDbJobs {
  #db;
  constructor(db) {
    this.#db = db;
  }
  static async open() {
    const open = indexedDB.open(DATABASE, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(TABLE);
    return new IndexedDbJobs(await request(open));
  }
  async #write(action) {
    const tx = this.#db.transaction(TABLE, "readwrite");
    action(tx.objectStore(TABLE));
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error ?? new Error("IndexedDB write failed"));
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB write aborted (quota?)"));
    });
  }
  async get(jobId) {
    return request(this.#db.transaction(TABLE, "readonly").objectStore(TABLE).get(jobId));
  }
  async put(record) {
    await this.#write((store) => store.put(record, record.jobId));
  }
  async delete(jobId) {
    await this.#write((store) => store.delete(jobId));
  }
  async list() {
    return request(this.#db.transaction(TABLE, "readonly").objectStore(TABLE).getAll());
  }
}

/** Job records for this process only. */
class MemoryJobs {
  #jobs = new Map();
  async get(jobId) {
    return this.#jobs.get(jobId);
  }
  async put(record) {
    this.#jobs.set(record.jobId, record);
  }
  async delete(jobId) {
    this.#jobs.delete(jobId);
  }
  async list() {
    return [...this.#jobs.values()];
  }
}

let opened = null;

/** The job store of this page or process (opened once). */
export function jobStore() {
  opened ??= (async () => {
    if (typeof indexedDB !== "undefined") {
      try {
        return await IndexedDbJobs.open();
      } catch {
        /* private mode etc.: this session only */
      }
    }
    return new MemoryJobs();
  })();
  return opened;
}

/**
 * The checkpoint listener of a resumable job: keeps the latest checkpoint (writes in order, the
 * newest last), and `settled()` removes the record once the job has ended.
 */
export function keepCheckpoints(jobId, config) {
  let writes = Promise.resolve();
  const listener = (bytes, epochsDone) => {
    const record = { jobId, config, epochsDone, savedAt: Date.now(), checkpoint: bytes.slice() };
    writes = writes.then(async () => (await jobStore()).put(record)).catch(() => {});
  };
  const settled = () => {
    writes = writes.then(async () => (await jobStore()).delete(jobId)).catch(() => {});
    return writes;
  };
  return { listener, settled };
}
