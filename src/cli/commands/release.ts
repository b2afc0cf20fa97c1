/**
 * `sampan release start|confirm|pause|resume|rollback|status|ls`: smart releases, over the cluster manager's
 * /sampan/v1/releases routes (docs/release.md). `status` follows the release's watch with progress bars.
 */
import { Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import type { IncomingMessage } from 'node:http';
import { clientFor, withErrors } from '../client.js';
import { printJson, printJsonLines, table } from '../format.js';
import { checkFormat, hostOpt } from './options.js';
import type { ReleaseHeader, ReleaseRecord } from '../../cluster/index.js';

const FINAL = ['done', 'rolled-back', 'failed'];
const releasePath = (service: string, action?: string) => `/sampan/v1/releases/${encodeURIComponent(service)}${action ? `/${action}` : ''}`;
/** Who runs the command, as the manager records it (confirmations, pauses, rollbacks). */
const me = () => `unix:${process.getuid?.() ?? 0}`;

const int = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: a whole number, not ${v}`);
  return n;
};

function summary(r: ReleaseHeader): string {
  const extra = [r.inFlight && `${r.inFlight} in flight`, r.stragglers && `${r.stragglers} stragglers`, r.failed && `${r.failed} failed`].filter(Boolean).join(', ');
  return `release ${r.id} of ${r.service}: ${r.state}, ${r.updated}/${r.total} on ${r.image}${extra ? ` (${extra})` : ''}`;
}

function printRecord(r: ReleaseRecord | ReleaseHeader, format: 'table' | 'json'): void {
  if (format === 'json') printJson(r);
  else {
    process.stdout.write(`${summary(r)}\n`);
    if (r.state === 'waiting-confirm') process.stdout.write(`the first batch is ready: sampan release confirm ${r.service}\n`);
  }
}

/** The watch's records, one per `record` event. */
async function* records(res: IncomingMessage): AsyncGenerator<ReleaseRecord> {
  let buf = '';
  for await (const chunk of res) {
    buf += (chunk as Buffer).toString('utf8');
    for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data) yield JSON.parse(data) as ReleaseRecord;
    }
  }
}

/** Follows a release until it ends: bars on a terminal, a line per change otherwise (and JSON lines with --format json). */
async function follow(cmd: Command, service: string, format: 'table' | 'json'): Promise<ReleaseRecord | undefined> {
  const res = await clientFor(cmd).stream('GET', releasePath(service, 'watch'));
  const tty = format === 'table' && process.stderr.isTTY;
  let bars: cliProgress.MultiBar | undefined;
  let updated: cliProgress.SingleBar | undefined;
  let flight: cliProgress.SingleBar | undefined;
  let last: ReleaseRecord | undefined;
  let lastLine = '';
  try {
    for await (const r of records(res)) {
      last = r;
      if (format === 'json') process.stdout.write(`${JSON.stringify(r)}\n`);
      else if (tty) {
        if (!bars) {
          bars = new cliProgress.MultiBar({ format: '{name} [{bar}] {value}/{total} {info}', stream: process.stderr, hideCursor: true, clearOnComplete: false }, cliProgress.Presets.shades_classic);
          updated = bars.create(r.total, 0, { name: 'updated  ', info: '' });
          flight = bars.create(r.policy.window * 2, 0, { name: 'in flight', info: '' });
        }
        updated!.update(r.updated, { info: `${r.state}${r.failed ? `, ${r.failed} failed` : ''}` });
        flight!.update(r.inFlight, { info: r.stragglers ? `${r.stragglers} stragglers` : '' });
      } else {
        const line = summary(r);
        if (line !== lastLine) process.stdout.write(`${line}\n`);
        lastLine = line;
      }
      if (r.state === 'waiting-confirm' && format === 'table') {
        const line = `waiting for confirmation: sampan release confirm ${service}`;
        if (tty) bars?.log(`${line}\n`);
      }
      if (FINAL.includes(r.state)) break;
    }
  } finally {
    bars?.stop();
    res.destroy();
  }
  return last;
}

export function registerRelease(program: Command): void {
  const release = program.command('release').description('smart releases of a service (against the cluster manager: --host or DOCKER_HOST)');
  hostOpt(
    release
      .command('start')
      .description('Start a release of SERVICE to IMAGE: a first batch, a wait for `release confirm`, then a sliding window')
      .argument('<service>')
      .argument('<image>')
      .option('--first-batch <n>', 'instances in the first batch', int('--first-batch'), 1)
      .option('--window <w>', 'instances in flight at once after the confirmation (and at most W unavailable)', int('--window'), 10)
      .option('--straggler-factor <k>', 'an instance slower than K × the p90 ready time gives its window slot up', (v) => Number(v), 3)
      .option('--max-failures <f>', 'failed attempts tolerated before the failure action', int('--max-failures'), 0)
      .addOption(new Option('--failure-action <a>', 'what past the failure budget').choices(['pause', 'rollback']).default('pause'))
      .addOption(new Option('--order <o>', 'stop the old task first, or start the new first').choices(['stop-first', 'start-first']).default('stop-first'))
      .option('--no-pre-pull', 'do not pre-pull the image on the next hosts')
      .option('--format <format>', 'output format: table or json', 'table'),
  ).action(withErrors(async (service: string, image: string, o: { firstBatch: number; window: number; stragglerFactor: number; maxFailures: number; failureAction: string; order: string; prePull: boolean; format?: string }, cmd: Command) => {
    const format = checkFormat(o.format);
    if (!Number.isFinite(o.stragglerFactor) || o.stragglerFactor < 1) throw new Error('--straggler-factor: a number of at least 1');
    const body = { service, image, firstBatch: o.firstBatch, window: o.window, stragglerFactor: o.stragglerFactor, maxFailures: o.maxFailures, failureAction: o.failureAction, order: o.order, prePull: o.prePull, user: me() };
    printRecord(await clientFor(cmd).json<ReleaseRecord>('POST', '/sampan/v1/releases', { body }), format);
  }));
  for (const [action, what] of [
    ['confirm', 'Confirm the first batch: the release goes on with its window'],
    ['pause', 'Pause a release: what is in flight ends, nothing new starts'],
    ['resume', 'Resume a paused release (its failure budget counts again from here)'],
    ['rollback', 'Roll a release back: every instance it touched back to the previous image'],
  ] as const) {
    hostOpt(
      release.command(action).description(what).argument('<service>').option('--format <format>', 'output format: table or json', 'table'),
    ).action(withErrors(async (service: string, o: { format?: string }, cmd: Command) => {
      const format = checkFormat(o.format);
      printRecord(await clientFor(cmd).json<ReleaseRecord>('POST', releasePath(service, action), { body: { user: me() } }), format);
    }));
  }
  hostOpt(
    release
      .command('status')
      .description("A service's release (the current one, else the last): followed with progress bars until it ends, unless --no-follow")
      .argument('<service>')
      .option('--no-follow', 'print the record once')
      .option('--format <format>', 'output format: table or json (with --follow: a JSON line per change)', 'table'),
  ).action(withErrors(async (service: string, o: { follow: boolean; format?: string }, cmd: Command) => {
    const format = checkFormat(o.format);
    const r = await clientFor(cmd).json<ReleaseRecord>('GET', releasePath(service));
    if (!o.follow || FINAL.includes(r.state)) {
      printRecord(r, format);
      // a release that ended other than done is a failure to a script that asks
      if (r.state === 'rolled-back' || r.state === 'failed') process.exitCode = 1;
      return;
    }
    const end = await follow(cmd, service, format);
    if (end && format === 'table') process.stdout.write(`${summary(end)}\n`);
    if (end && end.state !== 'done') process.exitCode = 1;
  }));
  hostOpt(
    release
      .command('ls')
      .alias('list')
      .description('The releases, newest first')
      .option('--service <s>', 'only this service')
      .option('--format <format>', 'output format: table or json', 'table'),
  ).action(withErrors(async (o: { service?: string; format?: string }, cmd: Command) => {
    const format = checkFormat(o.format);
    const list = await clientFor(cmd).json<ReleaseHeader[]>('GET', '/sampan/v1/releases', { query: { service: o.service } });
    if (format === 'json') printJsonLines(list);
    else process.stdout.write(`${table(['ID', 'SERVICE', 'STATE', 'IMAGE', 'PREVIOUS', 'UPDATED', 'FAILED', 'CREATED', 'CONFIRMED BY'], list.map((r) => [r.id, r.service, r.state, r.image, r.previousImage, `${r.updated}/${r.total}`, r.failed, r.createdAt, r.confirmedBy ?? '']))}\n`);
  }));
}
