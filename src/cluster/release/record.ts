/**
 * A release as the API, the CLI, the dashboard and etcd see it: the request, the record (its JSON shape is a
 * contract: docs/release.md), and the service labels that ask for smart mode from `docker service update`.
 */
import { z } from 'zod';
import { invalid } from '../../lib/errors.js';
import { validated } from '../../lib/layered-config.js';
import type { SlotStatus, SmartPolicy } from './planner.js';

export type ReleaseState = 'running' | 'waiting-confirm' | 'paused' | 'rolling-back' | 'rolled-back' | 'done' | 'failed';
export const ACTIVE_STATES: readonly ReleaseState[] = ['running', 'waiting-confirm', 'paused', 'rolling-back'];
export const isActive = (s: ReleaseState) => ACTIVE_STATES.includes(s);

export const ReleaseRequestSchema = z.strictObject({
  service: z.string().min(1).max(255),
  image: z.string().min(1).max(1024),
  firstBatch: z.number().int().min(1).default(1),
  window: z.number().int().min(1).default(10),
  stragglerFactor: z.number().min(1).max(1000).default(3),
  maxFailures: z.number().int().min(0).default(0),
  failureAction: z.enum(['pause', 'rollback']).default('pause'),
  prePull: z.boolean().default(true),
  order: z.enum(['stop-first', 'start-first']).default('stop-first'),
});
export type ReleaseRequest = z.infer<typeof ReleaseRequestSchema>;

export const validateRelease = (body: unknown): ReleaseRequest => validated(ReleaseRequestSchema, body ?? {}, 'release');

export const policyOf = (r: ReleaseRequest): SmartPolicy => ({
  kind: 'smart', firstBatch: r.firstBatch, window: r.window, stragglerFactor: r.stragglerFactor, maxFailures: r.maxFailures,
  failureAction: r.failureAction, prePull: r.prePull, order: r.order,
});

export interface ReleaseEvent {
  time: string;
  type: string;
  message: string;
  user?: string;
}

export interface ReleaseBatch {
  n: number;
  slots: number;
  startedAt: string;
  endedAt?: string;
}

export interface ReleaseInstanceView {
  slot: number;
  node: string;
  state: SlotStatus;
  image: string;
  /** The last attempt's time to ready or failure (ReplaceResult.startMs). */
  startMs?: number;
}

/** The record without its instances: what `releases/<service>/<id>` holds in etcd (each slot has a key of its own). */
export interface ReleaseHeader {
  id: string;
  service: string;
  image: string;
  previousImage: string;
  policy: SmartPolicy;
  state: ReleaseState;
  total: number;
  updated: number;
  /** Failed attempts (what the failure budget counts). */
  failed: number;
  inFlight: number;
  stragglers: number;
  /** Hosts whose pre-pull finished. */
  prePulled: number;
  batches: ReleaseBatch[];
  events: ReleaseEvent[];
  createdAt: string;
  confirmedBy?: string;
  confirmedAt?: string;
  finishedAt?: string;
  /** Failed attempts before the last resume: the budget counts from there. */
  failureBase?: number;
}

export type ReleaseRecord = ReleaseHeader & { instances: ReleaseInstanceView[] };

/** A slot's progress as etcd keeps it, written before each replacement starts and after it ends. */
export interface SlotRecord {
  slot: number;
  node: string;
  status: SlotStatus;
  attempts: number;
  startedAt?: number;
  order?: 'stop-first' | 'start-first';
  oldGone: boolean;
  avoid: string[];
  straggler?: boolean;
  /** The image the slot is being moved to: the release's, or the previous one while rolling back. */
  image: string;
  phase: 'forward' | 'rollback';
  startMs?: number;
}

/** Events kept in a record: the newest. */
export const MAX_EVENTS = 1000;

/** Service labels that make `docker service update --image` a smart release (docs/release.md, "Labels"). */
export const LABELS = {
  mode: 'com.sampan.release.mode',
  firstBatch: 'com.sampan.release.first-batch',
  window: 'com.sampan.release.window',
  stragglerFactor: 'com.sampan.release.straggler-factor',
  maxFailures: 'com.sampan.release.max-failures',
  failureAction: 'com.sampan.release.failure-action',
  prePull: 'com.sampan.release.pre-pull',
  order: 'com.sampan.release.order',
} as const;

/**
 * The release a service's labels ask for when its image changes, or undefined when they do not say smart (Docker's
 * own update then). A label that does not parse is a 400, not a silent default.
 */
export function releaseFromLabels(service: string, image: string, labels: Record<string, string>): ReleaseRequest | undefined {
  if (labels[LABELS.mode] === undefined || labels[LABELS.mode] === 'docker') return undefined;
  if (labels[LABELS.mode] !== 'smart') throw invalid(`label ${LABELS.mode}: smart or docker, not ${JSON.stringify(labels[LABELS.mode])}`);
  const num = (k: string) => {
    const v = labels[k];
    if (v === undefined) return undefined;
    const n = Number(v);
    return Number.isFinite(n) && v.trim() !== '' ? n : v;
  };
  const body: Record<string, unknown> = { service, image };
  const set = (key: keyof ReleaseRequest, v: unknown) => v !== undefined && (body[key] = v);
  set('firstBatch', num(LABELS.firstBatch));
  set('window', num(LABELS.window));
  set('stragglerFactor', num(LABELS.stragglerFactor));
  set('maxFailures', num(LABELS.maxFailures));
  set('failureAction', labels[LABELS.failureAction]);
  const pp = labels[LABELS.prePull];
  set('prePull', pp === undefined ? undefined : pp === 'true' || pp === '1' ? true : pp === 'false' || pp === '0' ? false : pp);
  set('order', labels[LABELS.order]);
  return validateRelease(body);
}
