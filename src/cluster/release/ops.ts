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
}
