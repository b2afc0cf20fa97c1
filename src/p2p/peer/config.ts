/**
 * `sampan p2p peer` configuration, validated once: flags > environment (SAMPAN_P2P_PEER_<KEY>) > the JSON file
 * given with --config > defaults.
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { invalid } from '../../lib/errors.js';
import { envValues, givenFlags, readConfigFile, validated } from '../../lib/layered-config.js';

const ADDR_RE = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/;
const url = z.string().regex(/^https?:\/\/[^/]+/, 'expected an http(s) URL');

export const PeerConfigSchema = z.strictObject({
  /** Where pieces are kept. */
  root: z.string().min(1).default('/var/lib/sampan/p2p'),
  /** The registry mirror for the local runtime. */
  listen: z.string().regex(ADDR_RE, 'expected HOST:PORT').default('127.0.0.1:65001'),
  /** The piece API for other peers. */
  peerListen: z.string().regex(ADDR_RE, 'expected HOST:PORT').default('127.0.0.1:65002'),
  /** The URL other peers reach the piece API at (default: http://<peerListen>). */
  advertise: url.optional(),
  /** Scheduler base URL; none: every blob straight from the upstream. */
  scheduler: url.optional(),
  /** The registry behind the mirror, and others by host (HOST=URL). */
  upstream: url.default('https://registry-1.docker.io'),
  upstreams: z.record(z.string(), url).default({}),
  zone: z.string().default(''),
  peerId: z.string().min(1).optional(),
  /** Bytes per second (0: unlimited). */
  uploadRate: z.number().nonnegative().default(0),
  downloadRate: z.number().nonnegative().default(0),
  /** Pieces sent at once (one more per slot may wait); few, so each goes out fast and is passed on sooner. */
  uploadSlots: z.number().int().positive().default(2),
  /** Pieces in flight to parents at once (at most 2 per parent). */
  concurrency: z.number().int().positive().default(4),
  cacheBytes: z.number().int().positive().default(10 * 1024 ** 3),
  /** With no piece arriving for this long, a child fetches the rest from the upstream. */
  stallSeconds: z.number().positive().default(15),
  blockSeconds: z.number().positive().default(60),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
});

export type PeerConfig = z.infer<typeof PeerConfigSchema> & { peerId: string; advertise: string };
export type PeerFlags = Partial<z.input<typeof PeerConfigSchema>> & { config?: string };

/** Flags over SAMPAN_P2P_PEER_* over the file over defaults; bad values are one clear error. */
export async function loadPeerConfig(flags: PeerFlags, env: NodeJS.ProcessEnv = process.env): Promise<PeerConfig> {
  const file = flags.config ?? env.SAMPAN_P2P_PEER_CONFIG;
  const fromFile = file ? await readConfigFile(file, 'p2p peer config file') : {};
  const c = validated(PeerConfigSchema, { ...fromFile, ...envValues(PeerConfigSchema.shape, 'SAMPAN_P2P_PEER_', env), ...givenFlags(flags) }, 'p2p peer config');
  const [host] = c.peerListen.split(/:(?=\d+$)/);
  if (!c.advertise && (host === '' || host === '0.0.0.0' || host === '::')) throw invalid('--advertise is needed when --peer-listen is on all interfaces: other peers must know where to reach this one');
  return { ...c, peerId: c.peerId ?? `${os.hostname()}-${randomBytes(4).toString('hex')}`, advertise: c.advertise ?? `http://${c.peerListen}` };
}
