/**
 * The on-disk piece store of a P2P peer. Layout: `<dir>/<digest hex>/data` (sparse, the blob's size, pieces at
 * their offsets), `meta.json` (TaskMeta + held bitmap + self-computed digests, batched atomic writes), and
 * `complete` once the whole blob matched its digest. See StoredTask for the piece rules, loadTask for recovery.
 */
export { PieceStore, type PieceStoreOptions, type PieceStoreEvents, type EvictedTask } from './store.js';
export { StoredTask, type StoredTaskEvents } from './task.js';
export { EMPTY_BLOB_DIGEST, pieceLength } from './meta.js';
