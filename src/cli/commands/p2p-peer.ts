/** `sampan p2p peer` (the daemon on every host) and `sampan preheat IMAGE` (ask the scheduler to seed an image). */
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import type { PeerFlags, PeerTaskSummary, PreheatRequest } from '../../p2p/index.js';
import { humanSize, printJson, table } from '../format.js';
import { collect } from './options.js';
import { withErrors } from '../client.js';
import { parseBytes } from '../../lib/units.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
const rate = (v: string) => (v === '0' ? 0 : parseBytes(v));

interface PeerOpts {
  config?: string;
  root?: string;
  listen?: string;
  peerListen?: string;
  advertise?: string;
  scheduler?: string;
  upstream?: string[];
  zone?: string;
  peerId?: string;
  uploadRate?: number;
  downloadRate?: number;
  uploadSlots?: number;
  concurrency?: number;
  cacheSize?: number;
  logLevel?: string;
}

export function registerP2pPeer(p2p: Command): void {
  p2p
    .command('peer')
    .description('run a P2P peer: a registry mirror for this host whose blobs come from other peers (one seed per blob goes to the registry)')
    .option('--config <file>', 'JSON config file (env SAMPAN_P2P_PEER_CONFIG); flags and env (SAMPAN_P2P_PEER_*) override it')
    .option('--root <dir>', 'piece store (default /var/lib/sampan/p2p)')
    .option('--listen <host:port>', 'registry mirror for the local runtime (default 127.0.0.1:65001)')
    .option('--peer-listen <host:port>', 'piece API for other peers (default 127.0.0.1:65002)')
    .option('--advertise <url>', 'the URL other peers reach the piece API at (default http://<peer-listen>)')
    .option('--scheduler <url>', 'scheduler base URL (without one every blob comes from the upstream)')
    .option('--upstream <url|host=url>', 'the registry behind the mirror; HOST=URL for a named registry (repeatable)', collect)
    .option('--zone <name>', 'zone (region, rack) this host is in: parents in the same zone are preferred')
    .option('--peer-id <id>', 'this peer\'s id (default hostname plus random)')
    .option('--upload-rate <bytes/s>', 'upload limit, e.g. 12.5m (default unlimited)', rate)
    .option('--download-rate <bytes/s>', 'download limit (default unlimited)', rate)
    .option('--upload-slots <n>', 'pieces sent at once (default 2); one more per slot waits, more get 503 busy', (v) => Number(v))
    .option('--concurrency <n>', 'pieces fetched from parents at once (default 4)', (v) => Number(v))
    .option('--cache-size <bytes>', 'piece store bound, least recently used blobs go first (default 10g)', parseBytes)
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .action(async (o: PeerOpts) => {
      const upstreams: Record<string, string> = {};
      let upstream: string | undefined;
      for (const u of o.upstream ?? []) {
        const m = /^([^=/]+)=(https?:\/\/.+)$/.exec(u);
        if (m) upstreams[m[1]!] = m[2]!;
        else upstream = u;
      }
      const flags: PeerFlags = {
        config: o.config,
        root: o.root,
        listen: o.listen,
        peerListen: o.peerListen,
        advertise: o.advertise,
        scheduler: o.scheduler,
        upstream,
        upstreams: Object.keys(upstreams).length ? upstreams : undefined,
        zone: o.zone,
        peerId: o.peerId,
        uploadRate: o.uploadRate,
        downloadRate: o.downloadRate,
        uploadSlots: o.uploadSlots,
        concurrency: o.concurrency,
        cacheBytes: o.cacheSize,
        logLevel: o.logLevel as PeerFlags['logLevel'],
      };
      // every `sampan` command (the engine too) loads this file: the peer's modules (undici) only when it runs
      const { loadPeerConfig } = await import('../../p2p/index.js');
      const { startPeer } = await import('../../p2p/index.js');
      const peer = await startPeer(await loadPeerConfig(flags));
      await peer.done;
      process.exit(0);
    });
}

/** `sampan p2p status`: what a peer holds and fetches, and from where (peers or the registry). */
export function registerP2pStatus(p2p: Command): void {
  p2p
    .command('status')
    .description("show a peer's blobs: pieces held, and for downloads in progress the bytes from other peers and from the registry")
    .option('--peer <url>', 'the peer\'s piece API (env SAMPAN_P2P_PEER)', process.env.SAMPAN_P2P_PEER ?? 'http://127.0.0.1:65002')
    .option('--watch', 'follow the downloads in progress with progress bars until they finish')
    .option('--format <fmt>', 'json: print the list as JSON')
    .action(
      withErrors(async (o: { peer: string; watch?: boolean; format?: string }) => {
        const get = async () => {
          const res = await fetch(`${o.peer.replace(/\/+$/, '')}/p2p/v1/tasks`);
          if (!res.ok) throw new Error(`peer ${o.peer}: ${res.status} ${await res.text()}`);
          return (await res.json()) as PeerTaskSummary[];
        };
        let tasks = await get();
        if (o.format === 'json') return printJson(tasks);
        if (o.watch) {
          const bars = new cliProgress.MultiBar({ format: '{id} {bar} {percentage}% | peers {peers} registry {registry}', hideCursor: true }, cliProgress.Presets.shades_classic);
          const open = new Map<string, cliProgress.SingleBar>();
          while (tasks.some((t) => t.active)) {
            for (const t of tasks.filter((x) => x.active)) {
              const payload = { id: t.id.slice(7, 19), peers: humanSize(t.active!.fromPeers), registry: humanSize(t.active!.fromUpstream) };
              const bar = open.get(t.id) ?? open.set(t.id, bars.create(t.total || 1, 0, payload)).get(t.id)!;
              bar.update(t.pieces, payload);
            }
            await new Promise((r) => setTimeout(r, 500));
            tasks = await get();
          }
          bars.stop();
        }
        const rows = tasks.map((t) => [t.id.slice(7, 19), t.size === undefined ? '-' : humanSize(t.size), `${t.pieces}/${t.total ?? '?'}`, t.complete ? 'complete' : t.active ? `fetching (${t.active.role})` : 'partial', t.active ? humanSize(t.active.fromPeers) : '-', t.active ? humanSize(t.active.fromUpstream) : '-']);
        process.stdout.write(`${table(['BLOB', 'SIZE', 'PIECES', 'STATE', 'FROM PEERS', 'FROM REGISTRY'], rows)}\n`);
      }),
    );
}

export function registerPreheat(program: Command): void {
  program
    .command('preheat')
    .description('have the scheduler seed an image\'s blobs on peers of a zone before a release')
    .argument('<image>', 'registry/repository:tag (or @digest), e.g. 10.0.0.5:5000/shop/web:2.0')
    .requiredOption('--scheduler <url>', 'scheduler base URL (env SAMPAN_P2P_SCHEDULER)', process.env.SAMPAN_P2P_SCHEDULER)
    .option('--zone <name>', 'seed peers of this zone')
    .option('--authorization <value>', 'Authorization header for the registry (e.g. "Basic ...")')
    .option('--no-wait', 'return once the job is accepted')
    .option('--format <fmt>', 'json: print the job as JSON')
    .action(
      withErrors(async (image: string, o: { scheduler: string; zone?: string; authorization?: string; wait: boolean; format?: string }) => {
        const body: PreheatRequest = { image, zone: o.zone, authorization: o.authorization };
        const bar = o.wait && o.format !== 'json' && process.stderr.isTTY ? new cliProgress.SingleBar({ format: 'preheat {bar} {value}/{total} blobs' }, cliProgress.Presets.shades_classic) : undefined;
        let barStarted = false;
        const { preheat } = await import('../../p2p/index.js');
        const job = await preheat(o.scheduler, body, {
          wait: o.wait,
          onProgress: (j) => {
            if (!bar) return;
            if (!barStarted) bar.start(j.blobs.length || 1, 0);
            barStarted = true;
            bar.setTotal(j.blobs.length || 1);
            bar.update(j.blobs.filter((b) => b.state === 'done').length);
          },
        });
        if (barStarted) bar?.stop();
        if (o.format === 'json') process.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
        else {
          process.stdout.write(`preheat ${job.id}: ${job.state}${job.error ? ` (${job.error})` : ''}\n`);
          for (const b of job.blobs) process.stdout.write(`  ${b.digest.slice(0, 19)}  ${b.state}  on ${b.peers.join(', ') || '-'}\n`);
        }
        if (job.state === 'failed') process.exitCode = 1;
      }),
    );
}
