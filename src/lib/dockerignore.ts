/**
 * `.dockerignore` with Docker's semantics: patterns are cleaned like paths, matched against slash-separated
 * paths relative to the context root (Go filepath.Match syntax, plus `**` for any number of directories),
 * a pattern matching a directory also covers everything below it, and `!` lines re-include (the last
 * matching line wins).
 *
 * Written here rather than taken from npm: the one maintained port (@balena/dockerignore) is case-insensitive
 * by default, follows Docker 19.03's parent-directory rule, accepts malformed patterns Docker rejects, and
 * exposes no patterns, which deciding whether an ignored directory must still be walked needs.
 */
import path from 'node:path';
import { invalid } from './errors.js';

type Kind = 'exact' | 'prefix' | 'suffix' | 'regexp';

interface Pattern {
  text: string;
  exclusion: boolean;
  dirs: string[];
  kind: Kind;
  re: RegExp;
}

export class DockerIgnore {
  private readonly patterns: Pattern[] = [];

  /** Read a .dockerignore file: `#` comment lines (at column 0), blank lines, leading `/` dropped. */
  static parse(text: string): DockerIgnore {
    const out: string[] = [];
    const lines = text.replace(/^\ufeff/, '').split('\n');
    for (let line of lines) {
      line = line.replace(/\r$/, '');
      if (line.startsWith('#')) continue;
      let p = line.trim();
      if (p === '') continue;
      const invert = p.startsWith('!');
      if (invert) p = p.slice(1).trim();
      if (p !== '') {
        p = goClean(p);
        if (p.length > 1 && p.startsWith('/')) p = p.slice(1);
      }
      out.push(invert ? `!${p}` : p);
    }
    return new DockerIgnore(out);
  }

  /** Patterns as a .dockerignore holds them after reading (or as `docker build` sends them). Malformed ones are a 400. */
  constructor(patterns: string[]) {
    for (let p of patterns) {
      p = p.trim();
      if (p === '') continue;
      p = goClean(p);
      let exclusion = false;
      if (p.startsWith('!')) {
        if (p.length === 1) throw invalid('illegal exclusion pattern: "!"');
        exclusion = true;
        p = p.slice(1);
      }
      const c = compile(p, true);
      if (!c) throw invalid(`syntax error in .dockerignore pattern ${JSON.stringify(p)}`);
      this.patterns.push({ text: p, exclusion, dirs: p.split('/'), ...c });
    }
  }

  /** rel: slash-separated path relative to the context root, no leading './' */
  ignores(rel: string): boolean {
    const file = cleanRel(rel);
    if (file === '') return false;
    const parent = path.posix.dirname(file);
    const parentDirs = parent.split('/');
    let matched = false;
    for (const p of this.patterns) {
      // only a pattern that could change the verdict matters
      if (p.exclusion !== matched) continue;
      let match = matches(p, file);
      if (!match && parent !== '.') {
        for (let i = 1; i <= parentDirs.length && !match; i++) match = matches(p, parentDirs.slice(0, i).join('/'));
      }
      if (match) matched = !p.exclusion;
    }
    return matched;
  }

  /** true when rel is an ignored directory but an exception pattern may re-include a path below it */
  mustWalk(rel: string): boolean {
    const dir = cleanRel(rel);
    if (dir === '' || !this.ignores(dir)) return false;
    const parts = dir.split('/');
    for (const p of this.patterns) {
      if (!p.exclusion) continue;
      // Docker's own test: the exception names a path under this directory
      if (`${p.text}/`.startsWith(`${dir}/`)) return true;
      if (couldMatchBelow(p.dirs, parts)) return true;
    }
    return false;
  }
}

/**
 * Go's filepath.Match on one name (COPY/ADD source globs): `*` and `?` never match '/', `[...]` classes
 * with ranges and `^` negation, `\` escapes. A malformed pattern is a 400.
 */
export function matchGlob(pattern: string, name: string): boolean {
  let re = globCache.get(pattern);
  if (!re) {
    const c = compile(pattern, false);
    if (!c) throw invalid(`syntax error in pattern ${JSON.stringify(pattern)}`);
    re = c.re;
    if (globCache.size > 256) globCache.clear();
    globCache.set(pattern, re);
  }
  return re.test(name);
}

const globCache = new Map<string, RegExp>();

function matches(p: Pattern, file: string): boolean {
  switch (p.kind) {
    case 'exact':
      return file === p.text;
    case 'prefix':
      return file.startsWith(p.text.slice(0, -2));
    case 'suffix': {
      // Docker tests a leading-`**` pattern without other wildcards as a plain suffix
      const suffix = p.text.slice(2);
      return file.endsWith(suffix) || (suffix.startsWith('/') && file === suffix.slice(1));
    }
    case 'regexp':
      return p.re.test(file);
  }
}

/** Whether an exception's directory parts can match `parts` and then go on below them. */
function couldMatchBelow(dirs: string[], parts: string[]): boolean {
  for (let i = 0; i < parts.length; i++) {
    const d = dirs[i];
    // a pattern ending at or above this directory re-includes nothing a later pattern did not undo
    if (d === undefined) return false;
    if (d.includes('**')) return true;
    const c = compile(d, false);
    if (!c || !c.re.test(parts[i]!)) return false;
  }
  return dirs.length > parts.length;
}

function cleanRel(rel: string): string {
  let r = goClean(rel);
  while (r.startsWith('/')) r = r.slice(1);
  return r === '.' ? '' : r;
}

/** Go's path.Clean: no '.', '..' resolved where possible, no doubled or trailing '/'. */
function goClean(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

const RE_SPECIAL = /[\^$\\.*+?()[\]{}|/]/g;

function lit(ch: string): string {
  return ch.replace(RE_SPECIAL, '\\$&');
}

/**
 * Translate a pattern to a RegExp the way Docker does (and find which cheaper test Docker uses for it).
 * `doubleStar` turns on `**`; without it this is plain filepath.Match. Returns undefined for patterns
 * filepath.Match rejects: an unterminated or empty class, a range missing an end, a trailing `\`.
 */
function compile(pattern: string, doubleStar: boolean): { kind: Kind; re: RegExp } | undefined {
  const chars = Array.from(pattern);
  let re = '';
  let kind: Kind = 'exact';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') {
      if (doubleStar && chars[i + 1] === '*') {
        const atStart = i === 0;
        i++;
        if (chars[i + 1] === '/') i++;
        if (i + 1 >= chars.length) {
          if (kind === 'exact') kind = 'prefix';
          else {
            re += '.*';
            kind = 'regexp';
          }
        } else {
          re += '(?:.*/)?';
          kind = 'regexp';
        }
        // Docker tests a leading `**` with a plain suffix check, unless a later wildcard makes it a regexp again
        if (atStart) kind = 'suffix';
      } else {
        re += '[^/]*';
        kind = 'regexp';
      }
    } else if (ch === '?') {
      re += '[^/]';
      kind = 'regexp';
    } else if (ch === '\\') {
      if (i + 1 >= chars.length) return undefined;
      re += lit(chars[++i]!);
      kind = 'regexp';
    } else if (ch === '[') {
      const cls = charClass(chars, i);
      if (!cls) return undefined;
      re += cls.re;
      i = cls.end;
      kind = 'regexp';
    } else re += lit(ch);
  }
  return { kind, re: new RegExp(`^${re}$`, 'su') };
}

/** A `[...]` class at chars[start] as filepath.Match reads it; `end` is the index of its `]`. */
function charClass(chars: string[], start: number): { re: string; end: number } | undefined {
  let i = start + 1;
  let negated = false;
  if (chars[i] === '^') {
    negated = true;
    i++;
  }
  const ranges: Array<[number, number]> = [];
  const esc = (): number | undefined => {
    let c = chars[i];
    if (c === undefined || c === '-' || c === ']') return undefined;
    if (c === '\\') {
      i++;
      c = chars[i];
      if (c === undefined) return undefined;
    }
    i++;
    // a class must be closed
    if (i >= chars.length) return undefined;
    return c.codePointAt(0)!;
  };
  for (;;) {
    if (chars[i] === ']' && ranges.length > 0) break;
    const lo = esc();
    if (lo === undefined) return undefined;
    let hi = lo;
    if (chars[i] === '-') {
      i++;
      const h = esc();
      if (h === undefined) return undefined;
      hi = h;
    }
    ranges.push([lo, hi]);
  }
  // a reversed range matches nothing (a JS class would not even compile)
  const body = ranges
    .filter(([lo, hi]) => lo <= hi)
    .map(([lo, hi]) => (lo === hi ? `\\u{${lo.toString(16)}}` : `\\u{${lo.toString(16)}}-\\u{${hi.toString(16)}}`))
    .join('');
  const re = body === '' ? (negated ? '[\\s\\S]' : '(?!)') : `[${negated ? '^' : ''}${body}]`;
  return { re, end: i };
}
