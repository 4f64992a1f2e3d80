// The engine hosts of a page: one main host (one wasm instance and one WebGPU device for every
// classifier) and, for pooled CPU classify, helper hosts started on first use. Part of the
// library (see xinsheng.js); nothing here knows the demo.

import { Remote } from './rpc.js';

/**
 * Engines a CPU classifier spreads `classify` over by default: one per core the page leaves
 * free (`navigator.hardwareConcurrency - 1`), at least one.
 */
export function defaultWorkers() {
  return Math.max(1, (globalThis.navigator?.hardwareConcurrency ?? 2) - 1);
}

/** The most engines a classifier uses: one per core (more would only share the cores). */
export function maxWorkers() {
  return Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1);
}

let remote;
/** The page's one engine host: one wasm instance and one WebGPU device for every classifier. */
export function engine() {
  if (!remote) {
    remote = new Remote();
    remote.onEnd = forget;
  }
  return remote;
}

/**
 * Extra engine hosts for pooled CPU classify, each a worker with its own wasm instance, shared
 * by every classifier of the page (each loads its model into them). Started on first use.
 */
const helpers = [];
export function helperHosts(count) {
  while (helpers.length < count) {
    const host = new Remote({ inPage: false });
    host.onEnd = forget;
    helpers.push(host);
  }
  return helpers.slice(0, count);
}

/**
 * Helper host → the classifiers (by a token each, so that this map never keeps a classifier
 * alive) holding a model copy there; a helper none holds is stopped.
 */
const helperUsers = new Map();
export function useHelper(host, token) {
  if (!helperUsers.has(host)) helperUsers.set(host, new Set());
  helperUsers.get(host).add(token);
}
export function releaseHelper(host, token) {
  const users = helperUsers.get(host);
  if (!users?.has(token)) return;
  users.delete(token);
  if (!users.size) {
    helperUsers.delete(host);
    host.terminate();
  }
}

/** Drops a host that can no longer be used, so that later calls start a fresh one. */
function forget(host) {
  if (remote === host) remote = undefined;
  const i = helpers.indexOf(host);
  if (i >= 0) helpers.splice(i, 1);
  helperUsers.delete(host);
}


/** Engine workers running: the main host and the pool's helpers. */
export function hostCount() {
  return 1 + helpers.length;
}
