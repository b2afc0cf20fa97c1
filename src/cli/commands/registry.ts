import { Command, Option } from 'commander';
import { invalid } from '../../lib/errors.js';
import type { RegistryFlags } from '../../registry/index.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** "90", "90s", "15m", "1h", "2d" -> seconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(v.trim());
  if (!m) throw invalid(`invalid duration ${JSON.stringify(v)}: use e.g. 90s, 15m, 1h, 2d`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's']!;
}

const int = (v: string): number => {
  if (!/^\d+$/.test(v)) throw invalid(`not a non-negative integer: ${v}`);
  return Number(v);
};

interface RegistryOpts {
  root?: string;
  addr?: string;
  config?: string;
  tlsCert?: string;
  tlsKey?: string;
  enableDelete?: boolean;
  maxManifestBytes?: number;
  logLevel?: RegistryFlags['logLevel'];
  auth?: 'none' | 'htpasswd' | 'token';
  htpasswd?: string;
  authRealm?: string;
  authService?: string;
  anonymousRead?: string[];
  authConfig?: string;
  proxyRemote?: string;
  proxyUsername?: string;
  proxyPassword?: string;
  proxyTtl?: string;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** The `auth` keys the flags set (undefined when none: the file's and env's stay whole). */
function authFlags(o: RegistryOpts): RegistryFlags['auth'] {
  const a = { mode: o.auth, htpasswd: o.htpasswd, realm: o.authRealm, service: o.authService };
  const set = Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined));
  return Object.keys(set).length ? set : undefined;
}

/** The `proxy` keys the flags set (mirror mode; undefined when none). */
function proxyFlags(o: RegistryOpts): RegistryFlags['proxy'] {
  const p = { remoteurl: o.proxyRemote, username: o.proxyUsername, password: o.proxyPassword, ttl: o.proxyTtl };
  const set = Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
  return Object.keys(set).length ? set : undefined;
}

export function registerRegistry(program: Command): void {
  const registry = program
    .command('registry')
    .description('run the OCI registry (Distribution Spec v1.1) in the foreground; `registry gc` collects garbage')
    .option('--root <dir>', 'storage root (default /var/lib/sampan/registry; env SAMPAN_REGISTRY_ROOT)')
    .option('--addr <host:port>', 'listen address (default 127.0.0.1:5000; env SAMPAN_REGISTRY_ADDR)')
    .option('--config <file>', 'JSON config file (env SAMPAN_REGISTRY_CONFIG); flags and env override it')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (with --tls-key)')
    .option('--tls-key <file>', 'private key for --tls-cert')
    .option('--enable-delete', 'allow deleting manifests, tags and blobs (the default)')
    .option('--no-enable-delete', 'refuse deletes with 405 UNSUPPORTED')
    .option('--max-manifest-bytes <n>', 'refuse larger manifests with 413 (default 4194304)', int)
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .addOption(new Option('--auth <mode>', 'authentication: none (default; htpasswd when --htpasswd is given), htpasswd (Basic) or token (built-in token service at /auth/token)').choices(['none', 'htpasswd', 'token']))
    .option('--htpasswd <file>', 'bcrypt htpasswd file: the accounts (htpasswd and token modes)')
    .option('--auth-realm <realm>', 'htpasswd mode: the Basic realm; token mode: the token service URL put in challenges (default: this registry\'s /auth/token)')
    .option('--auth-service <name>', 'token mode: the service name (token audience; default sampan-registry)')
    .option('--anonymous-read <pattern>', 'let clients without credentials pull repositories matching this glob (`*` within a path component, `**` across); repeatable', collect)
    .option('--auth-config <file>', 'JSON file with the auth section (mode, htpasswd, policy rules, token settings); flags override it')
    .option('--proxy-remote <url>', 'mirror mode: be a read-only pull-through cache of this upstream registry (https, or http on loopback; env SAMPAN_REGISTRY_PROXY_REMOTEURL)')
    .option('--proxy-username <user>', 'mirror mode: account on the upstream (env SAMPAN_REGISTRY_PROXY_USERNAME)')
    .option('--proxy-password <password>', 'mirror mode: its password (prefer env SAMPAN_REGISTRY_PROXY_PASSWORD: flags show in ps)')
    .option('--proxy-ttl <duration>', 'mirror mode: re-check a tag with the upstream after this long (default 5m; e.g. 1s, 30s, 1h)')
    .action(async (o: RegistryOpts) => {
      // every `sampan` command (the engine too) loads this file: the registry's modules only when it runs
      const { loadRegistryConfig } = await import('../../registry/index.js');
      const { startRegistry } = await import('../../registry/index.js');
      const config = await loadRegistryConfig({
        config: o.config,
        root: o.root,
        addr: o.addr,
        tlsCert: o.tlsCert,
        tlsKey: o.tlsKey,
        enableDelete: o.enableDelete,
        maxManifestBytes: o.maxManifestBytes,
        logLevel: o.logLevel,
        auth: authFlags(o),
        authConfig: o.authConfig,
        anonymousRead: o.anonymousRead,
        proxy: proxyFlags(o),
      });
      const running = await startRegistry(config);
      await running.done;
      process.exit(0);
    });

  registry
    .command('gc')
    .description('mark and sweep: delete blobs no manifest references (older than the grace period) and expired uploads')
    .option('--root <dir>', 'storage root')
    .option('--config <file>', 'JSON config file')
    .option('--dry-run', 'print what would be deleted, delete nothing')
    .option('--grace <duration>', 'keep blobs written or used within this long (default 1h, or gcGraceSeconds)')
    .option('--upload-expiry <duration>', 'remove uploads idle for this long (default 24h, or uploadExpirySeconds)')
    .action(async (o: { root?: string; config?: string; dryRun?: boolean; grace?: string; uploadExpiry?: string }, cmd: Command) => {
      // `--root` may have been taken by the parent command when given before `gc`
      const parent = (cmd.parent?.opts() ?? {}) as RegistryOpts;
      const { loadRegistryConfig } = await import('../../registry/index.js');
      const { openRegistry } = await import('../../registry/index.js');
      const { collectGarbage } = await import('../../registry/index.js');
      const { createLogger } = await import('../../lib/log.js');
      const config = await loadRegistryConfig({ config: o.config ?? parent.config, root: o.root ?? parent.root, logLevel: 'warn' });
      const log = createLogger('sampan-registry-gc', config.logLevel);
      const reg = await openRegistry(config, log);
      const dryRun = !!o.dryRun;
      const graceSeconds = o.grace !== undefined ? parseDuration(o.grace) : config.gcGraceSeconds;
      const expirySeconds = o.uploadExpiry !== undefined ? parseDuration(o.uploadExpiry) : config.uploadExpirySeconds;
      const verb = dryRun ? 'would delete' : 'deleted';
      const report = await collectGarbage(reg, {
        dryRun,
        graceMs: graceSeconds * 1000,
        uploadMaxAgeMs: expirySeconds * 1000,
        log,
        onDelete: (b) => process.stdout.write(`${verb} blob ${b.digest} (${b.size} bytes)\n`),
      });
      for (const u of report.uploadsPurged) process.stdout.write(`${dryRun ? 'would remove' : 'removed'} upload ${u.repository}/${u.id} (${u.offset} bytes)\n`);
      process.stdout.write(
        `${dryRun ? 'dry run: ' : ''}${report.repositories} repositories, ${report.manifests} manifests, ${report.marked} blobs referenced; ` +
          `${report.deleted.length} of ${report.blobs} blobs ${verb} (${report.bytesFreed} bytes), ${report.young} unreferenced kept within the ${graceSeconds}s grace period` +
          `${report.linksRemoved ? `, ${report.linksRemoved} stale links removed` : ''}\n`,
      );
      log.flush();
    });
}
