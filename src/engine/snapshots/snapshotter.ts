import type { Digest } from '../../lib/digest.js';

/** The directories of one container's snapshot, under the base directory the container service gives it. */
export interface SnapshotDirs {
  /** The writable layer's files. */
  upper: string;
  work: string;
  /** The container's root while mounted. */
  merged: string;
}

/**
 * What the container service needs of a snapshotter: a writable root over image layers, in a base directory of the
 * container's. overlay.ts implements it with overlayfs; engine.ts wires it.
 */
export interface Snapshotter {
  dirs(base: string): SnapshotDirs;
  /** Make the (empty) directories of a new snapshot. */
  prepare(base: string): Promise<void>;
  /** Mount the merged view over the layers (chain IDs bottom-most first); idempotent. Returns the merged dir. */
  mount(base: string, chain: Digest[], readonly?: boolean): Promise<string>;
  /** Nothing to do when not mounted. */
  unmount(base: string): Promise<void>;
  /** Unmount and delete the snapshot. */
  remove(base: string): Promise<void>;
}
