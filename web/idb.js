// Opening an IndexedDB database so that the promise always settles: success, an error (a denied
// or corrupt store, a full quota at upgrade), `blocked` (another tab holds an older version open)
// or no IndexedDB at all. The engine's model store (engine.js) and the demo's own store
// (app/store.js) both open through here.

/**
 * Resolves to the open `IDBDatabase` `name` at `version`, or rejects with the cause: the
 * browser's `DOMException` (its `name`, e.g. `QuotaExceededError`, kept), or an `Error` saying the
 * open is blocked. `upgrade(request, event)` runs on `upgradeneeded` (create stores there).
 * A database that opens after we gave up on it (it was blocked) is closed at once.
 */
export function openDatabase(name, version, upgrade) {
  return new Promise((resolve, reject) => {
    let request;
    try {
      request = indexedDB.open(name, version);
    } catch (e) {
      reject(e); // no IndexedDB here (denied, or not offered)
      return;
    }
    let settled = false;
    request.onupgradeneeded = (event) => upgrade(request, event);
    request.onsuccess = () => {
      if (settled) request.result.close();
      else resolve(request.result);
      settled = true;
    };
    request.onerror = (event) => {
      event.preventDefault();
      settled = true;
      reject(request.error ?? new Error(`IndexedDB cannot open '${name}'`));
    };
    request.onblocked = () => {
      settled = true;
      reject(new Error('another tab keeps an older version of it open'));
    };
  });
}
