// Model stores for the Kiln JS API: IndexedDB (browsers, persists across reloads), memory
// (Node's default) and a directory of files (Node, when a directory is given). Each is an
// object with async get(id) → Uint8Array | undefined, put(id, bytes), list() → string[] and
// delete(id) → boolean.

/** Models kept in memory for the life of the page or process. */
export class MemoryStore {
  #models = new Map();
  async get(id) { return this.#models.get(id); }
  async put(id, bytes) { this.#models.set(id, new Uint8Array(bytes)); }
  async list() { return [...this.#models.keys()].sort(); }
  async delete(id) { return this.#models.delete(id); }
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB request failed"));
  });
}

/** Models in the browser's IndexedDB (database `kiln`, object store `models`). */
export class IndexedDbStore {
  #db;
  constructor(db) { this.#db = db; }

  /** Opens (and creates on first use) the database. */
  static async open(name = "kiln") {
    const open = indexedDB.open(name, 1);
    open.onupgradeneeded = () => open.result.createObjectStore("models");
    return new IndexedDbStore(await request(open));
  }

  #store(mode) { return this.#db.transaction("models", mode).objectStore("models"); }

  async get(id) {
    const value = await request(this.#store("readonly").get(id));
    return value === undefined ? undefined : new Uint8Array(value);
  }

  async put(id, bytes) {
    const tx = this.#db.transaction("models", "readwrite");
    tx.objectStore("models").put(new Uint8Array(bytes), id);
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error ?? new Error("IndexedDB write failed"));
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB write aborted (quota?)"));
    });
  }

  async list() { return (await request(this.#store("readonly").getAllKeys())).map(String).sort(); }

  async delete(id) {
    const existed = (await request(this.#store("readonly").count(id))) > 0;
    const tx = this.#db.transaction("models", "readwrite");
    tx.objectStore("models").delete(id);
    await new Promise((resolve, reject) => { tx.oncomplete = resolve; tx.onerror = () => reject(tx.error); });
    return existed;
  }
}

/** Models as `<id>.kiln` files in a directory (Node); the same files `kiln --store DIR` uses. */
export class DirectoryStore {
  #dir;
  constructor(dir) { this.#dir = dir; }
  async #fs() { return { fs: await import("node:fs/promises"), path: await import("node:path") }; }

  async get(id) {
    const { fs, path } = await this.#fs();
    try { return new Uint8Array(await fs.readFile(path.join(this.#dir, `${id}.kiln`))); }
    catch (e) { if (e.code === "ENOENT") return undefined; throw e; }
  }

  async put(id, bytes) {
    const { fs, path } = await this.#fs();
    await fs.mkdir(this.#dir, { recursive: true });
    const file = path.join(this.#dir, `${id}.kiln`);
    await fs.writeFile(`${file}.tmp`, bytes);
    await fs.rename(`${file}.tmp`, file);
  }

  async list() {
    const { fs } = await this.#fs();
    try {
      return (await fs.readdir(this.#dir)).filter((f) => f.endsWith(".kiln")).map((f) => f.slice(0, -5)).sort();
    } catch (e) { if (e.code === "ENOENT") return []; throw e; }
  }

  async delete(id) {
    const { fs, path } = await this.#fs();
    try { await fs.unlink(path.join(this.#dir, `${id}.kiln`)); return true; }
    catch (e) { if (e.code === "ENOENT") return false; throw e; }
  }
}

/** IndexedDB in browsers (memory if unavailable); in Node a directory when given, else memory. */
export async function defaultStore({ dir } = {}) {
  if (dir) return new DirectoryStore(dir);
  if (typeof indexedDB !== "undefined") {
    try { return await IndexedDbStore.open(); } catch { /* private mode etc.: fall back */ }
  }
  return new MemoryStore();
}
