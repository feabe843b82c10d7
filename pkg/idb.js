// The IndexedDB plumbing of the package's small stores (models, participant ids, resumable
// jobs): a request as a Promise, a database of one object store (created on first use), and a
// read-write transaction awaited to its end.

/** A request's result as a Promise. */
export function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB request failed"));
  });
}

/** Opens `database`, creating its object store `table` on first use. */
export async function openTable(database, table) {
  const open = indexedDB.open(database, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(table);
  return request(open);
}

/** A read of `table`: `action(objectStore)` returns the request. */
export function readTable(db, table, action) {
  return request(action(db.transaction(table, "readonly").objectStore(table)));
}

/** A write to `table` (`action(objectStore)`), resolved once the transaction completes. */
export async function writeTable(db, table, action) {
  const tx = db.transaction(table, "readwrite");
  action(tx.objectStore(table));
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error ?? new Error("IndexedDB write failed"));
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB write aborted (quota?)"));
  });
}
