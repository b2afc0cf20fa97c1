/** Dockerfile instructions as `--change` applies them to an image config (import, commit). */
import path from 'node:path';
import { invalid } from '../../lib/errors.js';
import { type ImageRuntimeConfig } from '../../lib/oci.js';
// ---------------------------------------------------------------------------------------------
// docker import

/** Split words shell-style: whitespace separates, quotes group, backslash escapes. */
function splitWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw invalid(`unterminated quote in ${JSON.stringify(s)}`);
  if (inWord) out.push(cur);
  return out;
}

/** JSON array form when it parses as a list of strings, otherwise undefined. */
function jsonArray(rest: string): string[] | undefined {
  if (!rest.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(rest) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // shell form
  }
  return undefined;
}

function keyValues(instr: string, rest: string): Array<[string, string]> {
  const words = splitWords(rest);
  if (words.length === 0) throw invalid(`${instr} requires at least one argument`);
  if (!words[0]!.includes('=')) {
    // legacy "KEY value with spaces"
    const m = /^(\S+)\s+([\s\S]*)$/.exec(rest.trim());
    if (!m) throw invalid(`${instr} ${words[0]} needs a value (${instr} key=value or ${instr} key value)`);
    const value = splitWords(m[2]!).join(' ');
    return [[splitWords(m[1]!)[0] ?? m[1]!, value]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw invalid(`${instr}: ${JSON.stringify(w)} is not key=value`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

const CHANGE_INSTRUCTIONS = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'USER', 'VOLUME', 'WORKDIR', 'STOPSIGNAL'];

/** Apply `--change` Dockerfile instructions to a runtime config. */
export function applyChanges(cfg: ImageRuntimeConfig, changes: string[]): ImageRuntimeConfig {
  for (const raw of changes) {
    const line = raw.replace(/\\\r?\n/g, ' ').trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(line)!;
    const instr = m[1]!.toUpperCase();
    const rest = (m[2] ?? '').trim();
    if (!CHANGE_INSTRUCTIONS.includes(instr)) {
      throw invalid(`${m[1]} is not a valid change command (allowed: ${CHANGE_INSTRUCTIONS.join(', ')})`);
    }
    switch (instr) {
      case 'CMD':
      case 'ENTRYPOINT': {
        if (!rest) throw invalid(`${instr} requires at least one argument`);
        const cmd = jsonArray(rest) ?? ['/bin/sh', '-c', rest];
        if (instr === 'CMD') cfg.Cmd = cmd;
        else cfg.Entrypoint = cmd;
        break;
      }
      case 'ENV': {
        const env = [...(cfg.Env ?? [])];
        for (const [k, v] of keyValues(instr, rest)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        cfg.Env = env;
        break;
      }
      case 'LABEL': {
        const labels = { ...(cfg.Labels ?? {}) };
        for (const [k, v] of keyValues(instr, rest)) labels[k] = v;
        cfg.Labels = labels;
        break;
      }
      case 'EXPOSE': {
        const words = splitWords(rest);
        if (words.length === 0) throw invalid('EXPOSE requires at least one argument');
        const ports = { ...(cfg.ExposedPorts ?? {}) };
        for (const w of words) {
          const pm = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(w);
          const lo = pm ? Number(pm[1]) : NaN;
          const hi = pm?.[2] ? Number(pm[2]) : lo;
          if (!pm || lo < 1 || hi > 65535 || hi < lo || hi - lo > 1024) throw invalid(`EXPOSE: invalid port ${JSON.stringify(w)}`);
          const proto = (pm[3] ?? 'tcp').toLowerCase();
          for (let p = lo; p <= hi; p++) ports[`${p}/${proto}`] = {};
        }
        cfg.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const vols = jsonArray(rest) ?? splitWords(rest);
        if (vols.length === 0 || vols.some((v) => !v.trim())) throw invalid('VOLUME requires at least one non-empty path');
        const out = { ...(cfg.Volumes ?? {}) };
        for (const v of vols) out[v] = {};
        cfg.Volumes = out;
        break;
      }
      case 'USER':
        if (!rest || /\s/.test(rest)) throw invalid('USER requires exactly one argument');
        cfg.User = rest;
        break;
      case 'WORKDIR':
        if (!rest) throw invalid('WORKDIR requires exactly one argument');
        cfg.WorkingDir = path.posix.resolve(cfg.WorkingDir || '/', splitWords(rest).join(' ') || rest);
        break;
      case 'STOPSIGNAL':
        if (!/^(?:(?:SIG)?[A-Z][A-Z0-9+-]*|\d{1,2})$/i.test(rest)) throw invalid(`STOPSIGNAL: invalid signal ${JSON.stringify(rest)}`);
        cfg.StopSignal = rest;
        break;
    }
  }
  return cfg;
}

