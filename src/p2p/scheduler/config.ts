/**
 * `sampan p2p scheduler` configuration, validated once at start: flags > environment
 * (SAMPAN_P2P_SCHEDULER_<KEY>) > the JSON file given with --config (or SAMPAN_P2P_SCHEDULER_CONFIG) > defaults.
 */
import { z } from 'zod';
import { envValues, givenFlags, readConfigFile, validated } from '../../lib/layered-config.js';

const ADDR_RE = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/;
export const DEFAULT_LISTEN = '127.0.0.1:65003';

export const SchedulerConfigSchema = z.strictObject({
  /** HOST:PORT of the scheduler API ("" or no host = all interfaces). */
  listen: z.string().regex(ADDR_RE, 'expected HOST:PORT').default(DEFAULT_LISTEN),
  /** Parents given to a child at a time (K). */
  parents: z.number().int().min(1).max(64).default(4),
  /** Children a parent takes per upload slot it has: its slots send pieces one after another, and children
   * that find it busy try their other parents, so a parent can serve more children than it has slots. */
  childrenPerSlot: z.number().int().min(1).max(64).default(2),
  /** A task whose seed got no new piece for this long is stalled: children may be sent to the upstream. */
  seedStallSeconds: z.number().positive().default(10),
  /** How many children per task may be sent to the upstream when its seed stalls. */
  backToSourceLimit: z.number().int().min(0).default(2),
  /** Registries (HOST[:PORT] or IPv4 CIDR) reached over plain http by preheats; loopback always is. */
  insecureRegistries: z.array(z.string().min(1)).default([]),
  /** How long a parent that a child reported corrupt, gone or timing out is kept from that child. */
  blockSeconds: z.number().positive().default(60),
  /** Unfinished peers of a task that report nothing for this long are dropped; so are idle hosts. */
  peerIdleSeconds: z.number().positive().default(600),
  /** Tasks nobody touched for this long are forgotten. */
  taskIdleSeconds: z.number().positive().default(86_400),
  /** Seeds a preheat sends each blob to (round-robin over the zone's peers). */
  preheatSeedsPerBlob: z.number().int().min(1).max(16).default(2),
  /** A preheat job whose blobs are not all on their seeds by then fails. */
  preheatTimeoutSeconds: z.number().positive().default(3600),
  /** Seconds a graceful stop waits for requests in flight. */
  shutdownTimeoutSeconds: z.number().nonnegative().default(10),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
});

export type SchedulerConfig = z.infer<typeof SchedulerConfigSchema>;
export type SchedulerFlags = Partial<SchedulerConfig> & { config?: string };

const ENV_PREFIX = 'SAMPAN_P2P_SCHEDULER_';

export async function loadSchedulerConfig(flags: SchedulerFlags, env: NodeJS.ProcessEnv = process.env): Promise<SchedulerConfig> {
  const file = flags.config ?? env[`${ENV_PREFIX}CONFIG`];
  const fromFile = file ? await readConfigFile(file, 'scheduler config file') : {};
  return validated(SchedulerConfigSchema, { ...fromFile, ...envValues(SchedulerConfigSchema.shape, ENV_PREFIX, env), ...givenFlags(flags) }, 'scheduler config');
}
