/** Dockerfile instructions as `--change` applies them to an image config (import, commit). */
import path from 'node:path';
import { invalid } from '../../lib/errors.js';
import { type HealthConfig, type ImageRuntimeConfig } from '../../lib/oci.js';
import { parseGoDuration } from '../../lib/goduration.js';
import { keyValues, parseInstruction, type Instruction } from '../build/dockerfile.js';
import { envFromList, expandWord, expandWords } from '../build/expand.js';

const CHANGE_INSTRUCTIONS = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'HEALTHCHECK', 'LABEL', 'USER', 'VOLUME', 'WORKDIR', 'STOPSIGNAL'];

/** `HEALTHCHECK [--interval=D --timeout=D --start-period=D --start-interval=D --retries=N] CMD ...` or `HEALTHCHECK NONE`. */
export function parseHealthcheck(rest: string): HealthConfig {
  return healthConfig(parseInstruction(`HEALTHCHECK ${rest}`));
}

// the parser has checked the type, the command and the flag values
function healthConfig(ins: Instruction): HealthConfig {
  const [typ, ...cmd] = ins.args;
  if (typ!.toUpperCase() === 'NONE') return { Test: ['NONE'] };
  const h: HealthConfig = { Test: ins.json ? ['CMD', ...cmd] : ['CMD-SHELL', cmd[0]!] };
  const durations = [['interval', 'Interval'], ['timeout', 'Timeout'], ['start-period', 'StartPeriod'], ['start-interval', 'StartInterval']] as const;
  for (const [flag, key] of durations) {
    const v = ins.flags[flag];
    if (v) h[key] = parseGoDuration(v)!;
  }
  if (ins.flags.retries) h.Retries = Number(ins.flags.retries);
  return h;
}

/** Apply `--change` Dockerfile instructions to a runtime config. */
export function applyChanges(cfg: ImageRuntimeConfig, changes: string[]): ImageRuntimeConfig {
  for (const change of changes) {
    const first = change.split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#'));
    if (!first) continue;
    const word = /^\S+/.exec(first)![0];
    const instr = word.toUpperCase();
    if (!CHANGE_INSTRUCTIONS.includes(instr)) {
      throw invalid(`${word} is not a valid change command (allowed: ${CHANGE_INSTRUCTIONS.join(', ')})`);
    }
    const ins = parseInstruction(change);
    // values are expanded with the config's env as it was before this instruction, as the builder does
    const env = envFromList(cfg.Env ?? []);
    const x = (w: string) => expandWord(w, env);
    switch (instr) {
      case 'CMD':
      case 'ENTRYPOINT': {
        if (!ins.raw) throw invalid(`${instr} requires at least one argument`);
        const cmd = ins.json ? ins.args : ['/bin/sh', '-c', ins.args[0]!];
        if (instr === 'CMD') cfg.Cmd = cmd;
        else cfg.Entrypoint = cmd;
        break;
      }
      case 'ENV': {
        const list = [...(cfg.Env ?? [])];
        for (const { key, value } of keyValues(ins)) {
          const k = x(key);
          const i = list.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) list[i] = `${k}=${x(value ?? '')}`;
          else list.push(`${k}=${x(value ?? '')}`);
        }
        cfg.Env = list;
        break;
      }
      case 'LABEL': {
        const labels = { ...(cfg.Labels ?? {}) };
        for (const { key, value } of keyValues(ins)) labels[x(key)] = x(value ?? '');
        cfg.Labels = labels;
        break;
      }
      case 'EXPOSE': {
        const words = expandWords(ins.raw, env);
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
        const vols = ins.args.map(x);
        if (vols.length === 0 || vols.some((v) => !v.trim())) throw invalid('VOLUME requires at least one non-empty path');
        const out = { ...(cfg.Volumes ?? {}) };
        for (const v of vols) out[v] = {};
        cfg.Volumes = out;
        break;
      }
      case 'USER':
        if (/\s/.test(ins.raw)) throw invalid('USER requires exactly one argument');
        cfg.User = x(ins.raw);
        break;
      case 'WORKDIR':
        cfg.WorkingDir = path.posix.resolve(cfg.WorkingDir || '/', x(ins.raw));
        break;
      case 'HEALTHCHECK':
        cfg.Healthcheck = healthConfig(ins);
        break;
      case 'STOPSIGNAL': {
        const sig = x(ins.raw);
        if (!/^(?:(?:SIG)?[A-Z][A-Z0-9+-]*|\d{1,2})$/i.test(sig)) throw invalid(`STOPSIGNAL: invalid signal ${JSON.stringify(sig)}`);
        cfg.StopSignal = sig;
        break;
      }
    }
  }
  return cfg;
}
