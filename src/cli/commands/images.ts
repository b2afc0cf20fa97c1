/** Client commands for images: images (list) and load. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Command, Option } from 'commander';
import { clientFor, withErrors } from '../client.js';
import { ApiError, jsonMessages } from '../../lib/engine-client.js';
import { ago, goTime, humanSize, printJsonLines, shortId, table } from '../format.js';
import { collect, parseFilters } from './options.js';
import type { ImageSummary } from '../../lib/docker-types.js';
import { STATUS } from '../../lib/http/status.js';

export interface ImageRow {
  repository: string;
  tag: string;
  digest: string;
  id: string;
  created: number;
  size: number;
  image: ImageSummary;
}

/** Splits "reg:5000/name:tag" into name and tag (the tag is after the last colon past the last slash). */
export function splitTag(ref: string): [string, string] {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return [ref.slice(0, colon), ref.slice(colon + 1)];
  return [ref, '<none>'];
}

/** One row per repository:tag of each image, like docker; untagged images show as <none> <none>. */
export function imageRows(list: ImageSummary[]): ImageRow[] {
  const rows: ImageRow[] = [];
  const sorted = [...list].sort((a, b) => b.Created - a.Created);
  for (const img of sorted) {
    const digests = (img.RepoDigests ?? []).filter((d) => d !== '<none>@<none>');
    const digestOf = (repo: string) => {
      const d = digests.find((x) => x.startsWith(`${repo}@`));
      return d ? d.slice(d.indexOf('@') + 1) : '<none>';
    };
    const tags = (img.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
    const base = { id: img.Id, created: img.Created, size: img.Size, image: img };
    if (tags.length === 0) {
      const d = digests[0];
      const repo = d ? d.slice(0, d.indexOf('@')) : '<none>';
      rows.push({ ...base, repository: repo, tag: '<none>', digest: d ? d.slice(d.indexOf('@') + 1) : '<none>' });
      continue;
    }
    for (const t of tags) {
      const [repo, tag] = splitTag(t);
      rows.push({ ...base, repository: repo, tag, digest: digestOf(repo) });
    }
  }
  return rows;
}

interface ImagesOptions {
  quiet?: boolean;
  all?: boolean;
  filter?: string[];
  format?: string;
  trunc?: boolean;
  digests?: boolean;
}

async function images(repo: string | undefined, o: ImagesOptions, cmd: Command): Promise<void> {
  const fmt = (o.format ?? 'table').trim();
  const format = fmt === '' || fmt === 'table' ? 'table' : fmt === 'json' || fmt === '{{json .}}' ? 'json' : undefined;
  if (!format) throw new Error(`unsupported format "${o.format}": use table or json`);
  const client = clientFor(cmd);
  const filters = parseFilters(o.filter) ?? {};
  if (repo) (filters.reference ??= []).push(repo);
  const list = await client.json<ImageSummary[]>('GET', '/images/json', {
    query: {
      all: o.all ? true : undefined,
      filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined,
    },
  });
  const rows = imageRows(list ?? []);
  const trunc = o.trunc !== false;
  const id = (full: string) => (trunc ? shortId(full) : full);
  if (o.quiet) {
    const seen = new Set<string>();
    let out = '';
    for (const r of rows) {
      const v = id(r.id);
      if (seen.has(v)) continue;
      seen.add(v);
      out += `${v}\n`;
    }
    process.stdout.write(out);
    return;
  }
  if (format === 'json') {
    printJsonLines(
      rows.map((r) => ({
        Containers: r.image.Containers === undefined || r.image.Containers < 0 ? 'N/A' : String(r.image.Containers),
        CreatedAt: goTime(r.created),
        CreatedSince: ago(r.created),
        Digest: r.digest,
        ID: id(r.id),
        Repository: r.repository,
        SharedSize: r.image.SharedSize === undefined || r.image.SharedSize < 0 ? 'N/A' : humanSize(r.image.SharedSize),
        Size: humanSize(r.size),
        Tag: r.tag,
        UniqueSize: r.image.SharedSize === undefined || r.image.SharedSize < 0 ? 'N/A' : humanSize(r.size - r.image.SharedSize),
        VirtualSize: humanSize(r.size),
      })),
    );
    return;
  }
  const headers = o.digests
    ? ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE']
    : ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'];
  const body = rows.map((r) =>
    o.digests
      ? [r.repository, r.tag, r.digest, id(r.id), ago(r.created), humanSize(r.size)]
      : [r.repository, r.tag, id(r.id), ago(r.created), humanSize(r.size)],
  );
  process.stdout.write(`${table(headers, body)}\n`);
}

async function load(o: { input?: string; quiet?: boolean }, cmd: Command): Promise<void> {
  let body: Readable;
  if (o.input) {
    const st = await stat(o.input).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`open ${o.input}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
    });
    if (!st.isFile()) throw new Error(`${o.input} is not a file`);
    body = createReadStream(o.input);
  } else {
    if (process.stdin.isTTY) throw new Error('requested load from stdin, but stdin is empty');
    body = process.stdin;
  }
  const client = clientFor(cmd);
  const res = await client.stream('POST', '/images/load', {
    query: { quiet: o.quiet ? true : undefined },
    body,
    headers: { 'Content-Type': 'application/x-tar' },
  });
  for await (const m of jsonMessages(res)) {
    if (m.errorDetail?.message || m.error) throw new ApiError(STATUS.INTERNAL, m.errorDetail?.message || String(m.error));
    if (m.stream) process.stdout.write(m.stream);
    else if (m.status) process.stdout.write(`${m.status}\n`);
  }
}

export function registerImageCommands(program: Command): void {
  const hostOpt = () => new Option('-H, --host <url>', 'engine address (unix:///path or tcp://host:port)').hideHelp();

  program
    .command('images')
    .description('List images')
    .argument('[repository]', 'only images of this repository (name or name:tag)')
    .option('-q, --quiet', 'only show image IDs')
    .option('-a, --all', 'show all images (default hides intermediate images)')
    .option('-f, --filter <filter>', 'filter output based on conditions provided (name=value, repeatable)', collect)
    .option('--format <format>', 'output format: table or json', 'table')
    .option('--digests', 'show digests')
    .option('--no-trunc', "don't truncate output")
    .addOption(hostOpt())
    .action(withErrors((repo: string | undefined, o: ImagesOptions, cmd: Command) => images(repo, o, cmd)));

  program
    .command('load')
    .description('Load an image from a tar archive or STDIN')
    .option('-i, --input <file>', 'read from tar archive file, instead of STDIN')
    .option('-q, --quiet', 'suppress the load output')
    .addOption(hostOpt())
    .action(withErrors((o: { input?: string; quiet?: boolean }, cmd: Command) => load(o, cmd)));
}
