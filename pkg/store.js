// Model stores for the Kiln JS API: IndexedDB (browsers, persists across reloads), memory
// (Node's default) and a directory of files (Node, when a directory is given). Each is an
// object with async get(id) → Uint8Array | undefined, put(id, bytes), list() → string[] and
// delete(id) → boolean.

import { openTable, readTable, writeTable } from "./idb.js";

const MODEL_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The model-id rule every store applies (the same as the engine's `ModelId`): ASCII letters,
 * digits, `-` and `_`, 1 to 128 characters. Anything else — `../escape`, `a/b`, `""` — is a
 * TypeError, so no store ever turns an id into a path outside itself.
 */
export function assertModelId(id) {
  if (typeof id !== "string" || !MODEL_ID.test(id)) {
    throw new TypeError(
      `${JSON.stringify(String(id)).slice(0, 80)} is not a valid model id (ASCII letters, digits, \`-\` and \`_\`, 1 to 128 characters)`,
    );
  }
  return id;
}

/** Whether `id` passes the model-id rule. */
export function isModelId(id) {
  return typeof id === "string" && MODEL_ID.test(id);
}

/** Models kept in memory for the life of the page or process. */
export class MemoryStore {
  #models = new Map();
  async get(id) {
    return this.#models.get(assertModelId(id));
  }
  async put(id, bytes) {
    this.#models.set(assertModelId(id), new Uint8Array(bytes));
  }
  async list() {
    return [...this.#models.keys()].sort();
  }
  async delete(id) {
    return this.#models.delete(assertModelId(id));
  }
}

/** Models in the browser's IndexedDB (database `kiln`, object store `models`). */
export class IndexedDbStore {
  #db;
  constructor(db) {
    this.#db = db;
  }

  /** Opens (and creates on first use) the database. */
  static async open(name = "kiln") {
    return new IndexedDbStore(await openTable(name, "models"));
  }

  async get(id) {
    const value = await readTable(this.#db, "models", (store) => store.get(assertModelId(id)));
    return value === undefined ? undefined : new Uint8Array(value);
  }

  async put(id, bytes) {
    assertModelId(id);
    await writeTable(this.#db, "models", (store) => store.put(new Uint8Array(bytes), id));
  }

  async list() {
    const keys = await readTable(this.#db, "models", (store) => store.getAllKeys());
    return keys.map(String).filter(isModelId).sort();
  }

  async delete(id) {
    assertModelId(id);
    const existed = (await readTable(this.#db, "models", (store) => store.count(id))) > 0;
    await writeTable(this.#db, "models", (store) => store.delete(id));
    return existed;
  }
}

/** Models as `<id>.kiln` files in a directory (Node); the same files `kiln --store DIR` uses. */
export class DirectoryStore {
  #dir;
  constructor(dir) {
    this.#dir = dir;
  }
  async #fs() {
    return { fs: await import("node:fs/promises"), path: await import("node:path") };
  }

  async get(id) {
    assertModelId(id);
    const { fs, path } = await this.#fs();
    try {
      return new Uint8Array(await fs.readFile(path.join(this.#dir, `${id}.kiln`)));
    } catch (e) {
      if (e.code === "ENOENT") return undefined;
      throw e;
    }
  }

  async put(id, bytes) {
    assertModelId(id);
    const { fs, path } = await this.#fs();
    const { randomUUID } = await import("node:crypto");
    await fs.mkdir(this.#dir, { recursive: true });
    const file = path.join(this.#dir, `${id}.kiln`);
    // A unique temporary name of its own: no other file is ever overwritten or removed.
    const tmp = path.join(this.#dir, `.${id}.kiln.${randomUUID()}.tmp`);
    try {
      await fs.writeFile(tmp, bytes, { flag: "wx" });
      await fs.rename(tmp, file);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
  }

  async list() {
    const { fs } = await this.#fs();
    try {
      return (await fs.readdir(this.#dir))
        .filter((f) => f.endsWith(".kiln"))
        .map((f) => f.slice(0, -5))
        .filter(isModelId)
        .sort();
    } catch (e) {
      if (e.code === "ENOENT") return [];
      throw e;
    }
  }

  async delete(id) {
    assertModelId(id);
    const { fs, path } = await this.#fs();
    try {
      await fs.unlink(path.join(this.#dir, `${id}.kiln`));
      return true;
    } catch (e) {
      if (e.code === "ENOENT") return false;
      throw e;
    }
  }
}

/** IndexedDB in browsers (memory if unavailable); in Node a directory when given, else memory. */
export async function defaultStore({ dir } = {}) {
  if (dir) return new DirectoryStore(dir);
  if (typeof indexedDB !== "undefined") {
    try {
      return await IndexedDbStore.open();
    } catch {
      /* private mode etc.: fall back */
    }
  }
  return new MemoryStore();
}
