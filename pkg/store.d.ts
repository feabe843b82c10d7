/** A byte-level model store: what Kiln saves trained models into. */
export interface ModelStore {
  get(id: string): Promise<Uint8Array | undefined>;
  put(id: string, bytes: Uint8Array): Promise<void>;
  list(): Promise<string[]>;
  delete(id: string): Promise<boolean>;
}
/** Models in memory for the life of the page or process. */
export class MemoryStore implements ModelStore {
  get(id: string): Promise<Uint8Array | undefined>;
  put(id: string, bytes: Uint8Array): Promise<void>;
  list(): Promise<string[]>;
  delete(id: string): Promise<boolean>;
}
/** Models in IndexedDB (browsers); they persist across reloads. */
export class IndexedDbStore implements ModelStore {
  static open(name?: string): Promise<IndexedDbStore>;
  get(id: string): Promise<Uint8Array | undefined>;
  put(id: string, bytes: Uint8Array): Promise<void>;
  list(): Promise<string[]>;
  delete(id: string): Promise<boolean>;
}
/** Models as `<id>.kiln` files in a directory (Node). */
export class DirectoryStore implements ModelStore {
  constructor(dir: string);
  get(id: string): Promise<Uint8Array | undefined>;
  put(id: string, bytes: Uint8Array): Promise<void>;
  list(): Promise<string[]>;
  delete(id: string): Promise<boolean>;
}
/** IndexedDB in browsers, a directory (when given) or memory in Node. */
export function defaultStore(options?: { dir?: string }): Promise<ModelStore>;
