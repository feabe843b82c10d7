// Which participant this device is in a federation, kept across page reloads and restarts so a
// client that comes back rejoins as itself (the server keeps its place in the open round): in
// IndexedDB in browsers (database `kiln-federations`), in a JSON file in Node when a
// `stateFile` is given, else for this process only.

import { openTable, readTable, writeTable } from "./idb.js";

const DATABASE = "kiln-federations";
const TABLE = "participants";

/** Participant ids by `server + federation`, in IndexedDB. */
class IndexedDbIds {
  #db;
  constructor(db) {
    this.#db = db;
  }
  static async open() {
    return new IndexedDbIds(await openTable(DATABASE, TABLE));
  }
  async get(key) {
    return readTable(this.#db, TABLE, (store) => store.get(key));
  }
  async set(key, participant) {
    await writeTable(this.#db, TABLE, (store) => store.put(participant, key));
  }
}

/** Participant ids in one JSON file (Node), written atomically. */
class FileIds {
  #file;
  constructor(file) {
    this.#file = file;
  }
  async #read() {
    const fs = await import("node:fs/promises");
    try {
      const value = JSON.parse(await fs.readFile(this.#file, "utf8"));
      return value !== null && typeof value === "object" ? value : {};
    } catch (e) {
      if (e.code === "ENOENT" || e instanceof SyntaxError) return {};
      throw e;
    }
  }
  async get(key) {
    return (await this.#read())[key];
  }
  async set(key, participant) {
    const fs = await import("node:fs/promises");
    const { randomUUID } = await import("node:crypto");
    const all = { ...(await this.#read()), [key]: participant };
    const tmp = `${this.#file}.${randomUUID()}.tmp`;
    try {
      await fs.writeFile(tmp, JSON.stringify(all), { flag: "wx" });
      await fs.rename(tmp, this.#file);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw new Error(`joinFederation: cannot write stateFile ${this.#file}: ${e.message}`);
    }
  }
}

/** Participant ids for this process only. */
class MemoryIds {
  #ids = new Map();
  async get(key) {
    return this.#ids.get(key);
  }
  async set(key, participant) {
    this.#ids.set(key, participant);
  }
}

/** Where this client keeps its participant ids: a file (`stateFile`), IndexedDB, or memory. */
export async function participantIds({ stateFile } = {}) {
  if (stateFile !== undefined) {
    if (typeof stateFile !== "string" || stateFile === "") throw new TypeError("stateFile must be a file path");
    return new FileIds(stateFile);
  }
  if (typeof indexedDB !== "undefined") {
    try {
      return await IndexedDbIds.open();
    } catch {
      /* private mode etc.: this session only */
    }
  }
  return new MemoryIds();
}
