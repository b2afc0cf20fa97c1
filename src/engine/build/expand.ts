/**
 * Docker's Dockerfile word processing (the builder's shell lexer): quote removal, escapes, `$VAR`/`${VAR...}`
 * substitution and word splitting. It is not a shell: no command substitution, globbing or arithmetic, and
 * unknown variables expand to nothing.
 */
import { invalid } from '../../lib/errors.js';

export type EnvLookup = (name: string) => string | undefined;

/**
 * Instructions whose arguments the builder expands with ARG/ENV values. RUN, CMD, ENTRYPOINT, SHELL and
 * HEALTHCHECK are left to the shell in the container; ONBUILD is expanded only when its trigger runs.
 */
export const EXPANDS: Set<string> = new Set([
  'ADD',
  'ARG',
  'COPY',
  'ENV',
  'EXPOSE',
  'FROM',
  'LABEL',
  'STOPSIGNAL',
  'USER',
  'VOLUME',
  'WORKDIR',
]);

export interface LexOptions {
  /** the Dockerfile escape character: `\` or `` ` `` */
  escape?: string;
  /** keep quote characters in the output (used to find heredoc words) */
  rawQuotes?: boolean;
  /** keep escape characters in the output */
  rawEscapes?: boolean;
  /** leave references to unset variables as written instead of expanding them to '' */
  skipUnsetEnv?: boolean;
}

/** An env lookup over `KEY=value` entries (a later entry wins, as in a container's Env). */
export function envFromList(list: Iterable<string>): EnvLookup {
  const m = new Map<string, string>();
  for (const e of list) {
    const eq = e.indexOf('=');
    if (eq < 0) m.set(e, '');
    else m.set(e.slice(0, eq), e.slice(eq + 1));
  }
  return (name) => m.get(name);
}

/** Expand one word: substitution and quote removal, whitespace kept (COPY sources, WORKDIR, ENV values...). */
export function expandWord(word: string, env: EnvLookup, escape = '\\'): string {
  return lex(word, env, { escape }).word;
}

/** Expand then split into words; quoted whitespace does not split (EXPOSE, VOLUME in shell form...). */
export function expandWords(text: string, env: EnvLookup, escape = '\\'): string[] {
  return lex(text, env, { escape }).words;
}

/** Both results of one pass: the processed text and its words. Errors are 400s naming the input. */
export function lex(text: string, env: EnvLookup, opts: LexOptions = {}): { word: string; words: string[] } {
  const escape = opts.escape ?? '\\';
  if (escape !== '\\' && escape !== '`') throw invalid(`invalid escape token ${escape} does not match \` or \\`);
  try {
    return new Lexer(text, env, escape, opts).run();
  } catch (err) {
    if (err instanceof LexError) throw invalid(`failed to process ${JSON.stringify(text)}: ${err.message}`);
    throw err;
  }
}

class LexError extends Error {}

// unicode.IsSpace in Go: JS \s minus U+FEFF, plus U+0085
function isSpace(ch: string): boolean {
  return ch === '\u0085' || (ch !== '\ufeff' && /\s/u.test(ch));
}

/** Collects words the way Docker does: only unquoted, unescaped whitespace from the source splits. */
class Words {
  private word = '';
  private inWord = false;
  private readonly words: string[] = [];

  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord && this.word.length > 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else this.addRaw(ch);
  }

  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }

  addRaw(s: string): void {
    this.word += s;
    this.inWord = true;
  }

  // an empty quoted string makes no word, as in Docker
  get(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

class Lexer {
  private readonly chars: string[];
  private pos = 0;

  constructor(
    text: string,
    private readonly env: EnvLookup,
    private readonly escape: string,
    private readonly opts: LexOptions,
  ) {
    this.chars = Array.from(text);
  }

  run(): { word: string; words: string[] } {
    const r = this.until(undefined, !!this.opts.rawEscapes);
    return { word: r.text, words: r.words };
  }

  private peek(): string | undefined {
    return this.chars[this.pos];
  }

  private next(): string | undefined {
    return this.chars[this.pos++];
  }

  /** Process up to `stop` (consumed) or the end; `stop` missing at the end is an error. */
  private until(stop: string | undefined, rawEscapes: boolean): { text: string; words: string[] } {
    let text = '';
    const words = new Words();
    for (let ch = this.peek(); ch !== undefined; ch = this.peek()) {
      if (stop !== undefined && ch === stop) {
        this.next();
        return { text, words: words.get() };
      }
      if (ch === "'" || ch === '"') {
        const s = ch === "'" ? this.singleQuoted() : this.doubleQuoted();
        text += s;
        words.addRaw(s);
        continue;
      }
      if (ch === '$') {
        const s = this.dollar();
        text += s;
        // substituted values split into words (unlike a shell, also inside ${X:-"a b"})
        words.addString(s);
        continue;
      }
      this.next();
      if (ch === this.escape) {
        if (rawEscapes) {
          text += ch;
          words.addRaw(ch);
        }
        const esc = this.next();
        // a trailing escape is dropped
        if (esc === undefined) break;
        text += esc;
        words.addRaw(esc);
        continue;
      }
      text += ch;
      words.addChar(ch);
    }
    if (stop !== undefined) throw new LexError(`unexpected end of statement while looking for matching ${stop}`);
    return { text, words: words.get() };
  }

  private singleQuoted(): string {
    const raw = !!this.opts.rawQuotes;
    let out = raw ? this.next()! : (this.next(), '');
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw new LexError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") return raw ? out + ch : out;
      out += ch;
    }
  }

  private doubleQuoted(): string {
    const raw = !!this.opts.rawQuotes;
    let out = raw ? this.next()! : (this.next(), '');
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) throw new LexError('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        this.next();
        return raw ? out + ch : out;
      }
      if (ch === '$') {
        out += this.dollar();
        continue;
      }
      this.next();
      if (ch === this.escape) {
        const after = this.peek();
        if (this.opts.rawEscapes) out += ch;
        if (after === undefined) continue;
        // only ", $ and the escape itself can be escaped inside double quotes; otherwise it stays literal
        if (after === '"' || after === '$' || after === this.escape) out += this.next()!;
        else if (!this.opts.rawEscapes) out += ch;
        continue;
      }
      out += ch;
    }
  }

  private name(): string {
    let name = '';
    for (let ch = this.peek(); ch !== undefined; ch = this.peek()) {
      if (name === '' && /\p{Nd}/u.test(ch)) {
        // positional: all the digits
        while (this.peek() !== undefined && /\p{Nd}/u.test(this.peek()!)) name += this.next();
        return name;
      }
      // special parameters ($$, $?, ...) are looked up like any name, so they expand to '' here
      if (name === '' && '@*#?-$!0'.includes(ch)) return this.next()!;
      if (!/[\p{L}\p{Nd}_]/u.test(ch)) break;
      name += this.next();
    }
    return name;
  }

  private lookup(name: string): string | undefined {
    return this.env(name);
  }

  private dollar(): string {
    this.next(); // $
    if (this.peek() !== '{') {
      const name = this.name();
      if (name === '') return '$';
      const v = this.lookup(name);
      if (v === undefined && this.opts.skipUnsetEnv) return `$${name}`;
      return v ?? '';
    }
    this.next(); // {
    const first = this.peek();
    if (first === undefined) throw new LexError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new LexError('syntax error: bad substitution');
    const name = this.name();
    const op = this.next();
    if (op === undefined) throw new LexError("syntax error: missing '}'");
    const value = this.lookup(name);
    const unset = value === undefined;
    if (op === '}') {
      if (unset && this.opts.skipUnsetEnv) return `\${${name}}`;
      return value ?? '';
    }
    let mod = op;
    let colon = false;
    if (op === ':') {
      colon = true;
      const m = this.next();
      if (m === undefined) throw new LexError("syntax error: missing '}'");
      mod = m;
    }
    if (mod === '-' || mod === '+' || mod === '?') {
      // the word is expanded even when it is not used, as Docker does
      const word = this.modifierWord('}', false);
      if (unset && this.opts.skipUnsetEnv) return `\${${name}${colon ? ':' : ''}${mod}${word}}`;
      const missing = unset || (colon && value === '');
      if (mod === '-') return missing ? word : value!;
      if (mod === '+') return missing ? '' : word;
      if (missing) {
        const msg = word !== '' ? word : unset ? 'is not allowed to be unset' : 'is not allowed to be empty';
        throw new LexError(`${name}: ${msg}`);
      }
      return value!;
    }
    if (!colon && (mod === '#' || mod === '%')) {
      let pattern = this.modifierWord('}', true);
      if (unset && this.opts.skipUnsetEnv) return `\${${name}${mod}${pattern}}`;
      const greedy = pattern.startsWith(mod);
      if (greedy) pattern = pattern.slice(1);
      return mod === '#' ? trimPrefix(value ?? '', pattern, greedy) : trimSuffix(value ?? '', pattern, greedy);
    }
    if (!colon && mod === '/') {
      const all = this.peek() === '/';
      if (all) this.next();
      const pattern = this.modifierWord('/', true, "syntax error: missing '/' in ${}");
      const repl = this.modifierWord('}', false);
      if (unset && this.opts.skipUnsetEnv) return `\${${name}/${all ? '/' : ''}${pattern}/${repl}}`;
      return replacePattern(value ?? '', pattern, repl, all);
    }
    throw new LexError(`unsupported modifier (${colon ? ':' : ''}${mod}) in substitution`);
  }

  private modifierWord(stop: string, rawEscapes: boolean, eofMsg = "syntax error: missing '}'"): string {
    try {
      return this.until(stop, rawEscapes).text;
    } catch (err) {
      if (err instanceof LexError && this.peek() === undefined) throw new LexError(eofMsg);
      throw err;
    }
  }
}

/** A shell pattern (`*`, `?`, `\` escapes) as an anchored RegExp source. */
function globSource(pattern: string): string {
  let re = '';
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') re += '[\\s\\S]*';
    else if (ch === '?') re += '[\\s\\S]';
    else if (ch === '\\' && i + 1 < chars.length) re += escapeRe(chars[++i]!);
    else re += escapeRe(ch);
  }
  return `^(?:${re})$`;
}

function escapeRe(ch: string): string {
  return ch.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

function trimPrefix(value: string, pattern: string, greedy: boolean): string {
  const re = new RegExp(globSource(pattern), 'u');
  const n = value.length;
  for (let k = 0; k <= n; k++) {
    const i = greedy ? n - k : k;
    if (re.test(value.slice(0, i))) return value.slice(i);
  }
  return value;
}

function trimSuffix(value: string, pattern: string, greedy: boolean): string {
  const re = new RegExp(globSource(pattern), 'u');
  const n = value.length;
  for (let k = 0; k <= n; k++) {
    const i = greedy ? k : n - k;
    if (re.test(value.slice(i))) return value.slice(0, i);
  }
  return value;
}

function replacePattern(value: string, pattern: string, repl: string, all: boolean): string {
  if (pattern === '') return value;
  const re = new RegExp(globSource(pattern), 'u');
  let out = '';
  let s = 0;
  while (s <= value.length) {
    let end = -1;
    // leftmost, then longest, as the greedy regexp Docker builds
    for (let e = value.length; e > s; e--) {
      if (re.test(value.slice(s, e))) {
        end = e;
        break;
      }
    }
    if (end < 0) {
      if (s < value.length) out += value[s];
      s++;
      continue;
    }
    out += repl;
    s = end;
    if (!all) return out + value.slice(s);
  }
  return out;
}
