import type { ReleaseState } from './record.js';

/** What a release needs from services; implemented by src/cluster/services, driven by src/cluster/release. */
export interface ReleaseInstance { slot: number; taskId: string; node: string; image: string; state: 'new' | 'pending' | 'starting' | 'running' | 'failed' | 'shutdown'; healthy?: boolean }
export interface ReplaceResult { ok: boolean; node?: string; taskId?: string; error?: string; startMs: number }
export interface ReleaseOps {
  /** The service's current desired-running instances, by slot. */
  instances(service: string): ReleaseInstance[];
  /** Replace one slot's task by one of `image`: pre-stop and stop the old (stop-first) or start the new first (start-first),
   *  resolve when the new task is ready (running and, with a health check, healthy) or has failed. `avoid` = nodes not to use. */
  replace(service: string, slot: number, image: string, o: { order: 'stop-first' | 'start-first'; avoid?: string[]; signal?: AbortSignal }): Promise<ReplaceResult>;
  /** Pull `image` on `node` ahead of its replacement (capped per host and per registry); resolves when present. */
  prePull(node: string, image: string): Promise<void>;
  /** Record `image` as the service's spec image (so the reconciler and `docker service inspect` agree). */
  setImage(service: string, image: string): Promise<void>;
  /** Claims the service for release `id` before anything is written (a 409 while Docker's updater or another release holds it). */
  claim?(service: string, id: string): Promise<void>;
  /** The release's state changed: the service shows it (Docker's UpdateStatus); an ended release gives the service back. */
  status?(service: string, id: string, state: ReleaseState, message: string): Promise<void>;
  /** Has the image seeded into the P2P network ahead of the pulls; resolves when that ended (a failure does not stop the release). */
  preheat?(image: string): Promise<void>;
}
