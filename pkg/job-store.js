// The latest checkpoint of each resumable local job (`kiln.train(config, data, { resumable:
// true })`), kept so `kiln.resume(jobId)` can continue a job after a page reload: IndexedDB in
// browsers (database `kiln-jobs`), this process's memory elsewhere.

import { openTable, readTable, writeTable } from "./idb.js";

const DATABASE = "kiln-jobs";
const TABLE = "jobs";

/** Job records (`{ jobId, config, epochsDone, savedAt, checkpoint }`) in IndexedDB. */
class IndexedDbJobs {
  #db;
  constructor(db) {
    this.#db = db;
  }
  static async open() {
    return new IndexedDbJobs(await openTable(DATABASE, TABLE));
  }
  async get(jobId) {
    return readTable(this.#db, TABLE, (store) => store.get(jobId));
  }
  async put(record) {
    await writeTable(this.#db, TABLE, (store) => store.put(record, record.jobId));
  }
  async delete(jobId) {
    await writeTable(this.#db, TABLE, (store) => store.delete(jobId));
  }
  async list() {
    return readTable(this.#db, TABLE, (store) => store.getAll());
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
