/** Options and helpers the client commands share. */
import { Option, type Command } from 'commander';

/** Collects a repeatable option's values: `-e A=1 -e B=2`. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `k=v` pairs into docker's filters object: {"k": ["v", ...]}. */
export function parseFilters(list: string[] | undefined): Record<string, string[]> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string[]> = {};
  for (const f of list) {
    const i = f.indexOf('=');
    if (i <= 0) throw new Error(`bad format of filter (expected name=value): ${f}`);
    const k = f.slice(0, i).trim().toLowerCase();
    (out[k] ??= []).push(f.slice(i + 1));
  }
  return out;
}

/** `-e K=V` as given; a bare `-e K` takes K from the local environment (and is dropped when unset there). */
export function parseEnv(list: string[] | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const e of list ?? []) {
    if (e.includes('=')) {
      if (e.startsWith('=')) throw new Error(`invalid environment variable: ${e}`);
      out.push(e);
    } else if (env[e] !== undefined) out.push(`${e}=${env[e]}`);
  }
  return out;
}

/** `-l k=v` labels; a bare `-l k` is an empty label. */
export function parseLabels(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list ?? []) {
    const i = l.indexOf('=');
    if (i === 0) throw new Error(`invalid label: ${l}`);
    if (i < 0) out[l] = '';
    else out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

/** Adds the per-command `-H, --host` (so it works after the command name as well as before). */
export function hostOpt(cmd: Command): Command {
  return cmd.addOption(new Option('-H, --host <url>', 'engine address (unix:///path or tcp://host:port)').hideHelp());
}

export function checkFormat(fmt: string | undefined): 'table' | 'json' {
  const f = (fmt ?? 'table').trim();
  if (f === '' || f === 'table') return 'table';
  if (f === 'json' || f === '{{json .}}') return 'json';
  throw new Error(`unsupported format "${fmt}": use table or json`);
}
