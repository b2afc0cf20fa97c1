import { existsSync } from 'node:fs';
import { z } from 'zod';
import { invalid } from '../lib/errors.js';
import { envValues, givenFlags, readConfigFile, validated } from '../lib/layered-config.js';
import { NODE_ENDPOINT } from '../lib/node-protocol.js';

export const EngineConfigSchema = z.strictObject({
  root: z.string().min(1).default('/var/lib/sampan'),
  execRoot: z.string().min(1).default('/run/sampan'),
  hosts: z.array(z.string()).default(['unix:///run/sampan/engine.sock']),
  tlscacert: z.string().optional(),
  tlscert: z.string().optional(),
  tlskey: z.string().optional(),
  runc: z.string().default('runc'),
  conmon: z.string().default('conmon'),
  cgroupParent: z.string().default('/sampan'),
  /** Bind LXCFS's /proc views into containers (when lxcfs is installed). */
  lxcfs: z.boolean().default(true),
  /** Use (or start) lxcfs at this mountpoint only (default: any running lxcfs, else one started at /var/lib/lxcfs). */
  lxcfsDir: z.string().min(1).optional(),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** Pull mirrors: "URL" mirrors docker.io, "HOST[:PORT]=URL" mirrors that registry; tried first, the origin on failure. */
  registryMirrors: z.array(z.string().min(1)).default([]),
  /** Registries (HOST[:PORT] or an IP CIDR) reached without TLS verification or over plain HTTP; loopback always is. */
  insecureRegistries: z.array(z.string().min(1)).default([]),
  /**
   * The default bridge network: its Linux bridge and subnet (clear of podman's 10.88/16 and docker's 172.17/16).
   * Bridge names start with "sampan": the isolation rules between networks match sampan+.
   */
  bridgeName: z.string().regex(/^sampan[a-zA-Z0-9_.-]{1,9}$/, 'a bridge name "sampan" followed by 1 to 9 characters').default('sampan0'),
  bridgeSubnet: z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/).default('10.89.0.0/16'),
  /** Where user networks get their subnets when none is given: Docker's --default-address-pool "base=CIDR,size=N". */
  defaultAddressPool: z
    .string()
    .regex(/^base=\d+\.\d+\.\d+\.\d+\/\d+,size=\d+$/, 'base=CIDR,size=PREFIX, like base=10.90.0.0/16,size=24')
    .refine((v) => {
      const [, prefix, size] = /\/(\d+),size=(\d+)$/.exec(v)!.map(Number);
      return prefix! <= size! && size! <= 30;
    }, 'the pool\'s size must be a prefix length at least its base\'s and at most 30')
    .default('base=10.90.0.0/16,size=24'),
  /** Where the CNI plugins are (Debian's containernetworking-plugins). */
  cniPluginDirs: z.array(z.string().min(1)).default(['/usr/lib/cni', '/opt/cni/bin']),
  /** The node endpoints of the cluster's managers to join: one connection each. */
  join: z.array(z.string().regex(NODE_ENDPOINT, 'unix:///PATH, ws://127.0.0.1:PORT, or wss://HOST:PORT (mutual TLS) for a manager off this host')).default([]),
  /** The join's mutual TLS (wss://): the CA the manager's certificate chains to, and the certificate this engine presents. Default: --tlscacert, --tlscert, --tlskey. */
  joinTlscacert: z.string().optional(),
  joinTlscert: z.string().optional(),
  joinTlskey: z.string().optional(),
  joinToken: z.string().min(1).optional(),
  /** The node's name in the cluster (default: the host name). */
  nodeName: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'letters, digits, "_", "." and "-"').optional(),
  /** The node's labels, k=v, that constraints match. */
  nodeLabels: z.array(z.string().regex(/^[^=]+=.*$/, 'k=v')).default([]),
});

export type EngineConfig = z.infer<typeof EngineConfigSchema>;

export const DEFAULT_CONFIG_FILE = '/etc/sampan/engine.json';

/** Flags > env (SAMPAN_ + the key in UPPER_SNAKE, e.g. SAMPAN_EXEC_ROOT) > config file > defaults; validated once, here. */
export async function loadEngineConfig(flags: Partial<EngineConfig> & { config?: string }, env: NodeJS.ProcessEnv = process.env): Promise<EngineConfig> {
  const given = flags.config ?? env.SAMPAN_CONFIG;
  const file = given ?? DEFAULT_CONFIG_FILE;
  // the default file is optional; one that exists must be valid, as one given must exist
  const fromFile = given || existsSync(file) ? await readConfigFile(file, 'config file') : {};
  const c = validated(EngineConfigSchema, { ...fromFile, ...envValues(EngineConfigSchema.shape, 'SAMPAN_', env), ...givenFlags(flags) }, 'engine config');
  for (const h of c.hosts) {
    if (h.startsWith('unix://')) continue;
    if (!h.startsWith('tcp://')) throw invalid(`engine config: unsupported host ${h}: use unix:///path or tcp://host:port`);
    if (!c.tlscacert || !c.tlscert || !c.tlskey) {
      throw invalid(`refusing to listen on ${h} without mutual TLS: pass --tlscacert, --tlscert and --tlskey`);
    }
  }
  if (c.join.length && !c.joinToken) throw invalid('engine config: --join needs --join-token');
  c.joinTlscacert ??= c.tlscacert;
  c.joinTlscert ??= c.tlscert;
  c.joinTlskey ??= c.tlskey;
  const wss = c.join.find((j) => j.startsWith('wss://'));
  if (wss && !(c.joinTlscacert && c.joinTlscert && c.joinTlskey)) {
    throw invalid(`refusing to join ${wss} without mutual TLS: pass --join-tlscacert, --join-tlscert and --join-tlskey (or the engine's --tlscacert, --tlscert and --tlskey)`);
  }
  return c;
}
