/**
 * Dockerfile parsing for the classic builder, following Docker's parser (directives, comments, line
 * continuations, heredocs, builder flags, exec/shell form) and its per-instruction argument checks.
 *
 * Like Docker it works in two passes: the first splits lines into instructions and reports the errors the
 * line parser finds (in file order); the second checks each instruction and groups them into stages.
 * Arguments are returned unexpanded: see expand.ts and EXPANDS for what the builder substitutes.
 * One file over ~500 lines: both passes are one parser over one node type and one set of keyword tables.
 */
import { invalid } from '../../lib/errors.js';
import { parseGoDuration } from '../../lib/goduration.js';
import { lex } from './expand.js';

export interface Heredoc {
  /** the delimiter word, quotes removed */
  name: string;
  /** the body, each line with its line ending; leading tabs already removed when `chomp` */
  content: string;
  /** false when any part of the delimiter was quoted (`<<"EOF"`): the body is taken literally */
  expand: boolean;
  /** `<<-EOF`: leading tabs were stripped from the body and the terminator */
  chomp: boolean;
}

export interface Instruction {
  /** upper-case: FROM, RUN, ... */
  keyword: string;
  /** 1-based first line */
  line: number;
  /** last line, heredoc bodies included */
  endLine: number;
  /** `--name=value` flags before the arguments; bool flags as 'true'/'false'; a repeated flag keeps its last value */
  flags: Record<string, string>;
  /** every value of every flag in order (RUN may have several --mount) */
  flagValues: Record<string, string[]>;
  /** exec (JSON array) form */
  json: boolean;
  /**
   * Exec form: the array. Shell form: RUN/CMD/ENTRYPOINT/SHELL and the one-argument instructions
   * (MAINTAINER, STOPSIGNAL, USER, WORKDIR) have a single element, the text as written; HEALTHCHECK has
   * its type then the command (array or one element); ONBUILD has its trigger text; the others have
   * quote-aware words with quotes and escapes kept, so expansion can remove them.
   */
  args: string[];
  /** the text after the keyword and flags, continuations joined */
  raw: string;
  /** the whole instruction as written, continuations joined, trimmed */
  original: string;
  heredocs: Heredoc[];
  /** ONBUILD: the trigger instruction, parsed and checked (same lines as the ONBUILD) */
  onbuild?: Instruction;
}

export interface Stage {
  index: number;
  /** `FROM image AS name`, lower-cased */
  name?: string;
  /** the image as written (may hold $ARGs from before the first FROM) */
  base: string;
  /** --platform as written */
  platform?: string;
  line: number;
  instructions: Instruction[];
}

export interface Dockerfile {
  escape: string;
  /** ARGs before the first FROM */
  metaArgs: Instruction[];
  stages: Stage[];
}

type FlagType = 'string' | 'bool' | 'strings';

const HEALTH_FLAGS: Record<string, FlagType> = {
  interval: 'string',
  timeout: 'string',
  'start-period': 'string',
  'start-interval': 'string',
  retries: 'string',
};

/** Flags each instruction accepts; any other flag is a syntax error. */
const FLAGS: Record<string, Record<string, FlagType>> = {
  ADD: { chown: 'string', chmod: 'string', link: 'bool', 'keep-git-dir': 'bool', checksum: 'string' },
  COPY: { from: 'string', chown: 'string', chmod: 'string', link: 'bool' },
  FROM: { platform: 'string' },
  RUN: { mount: 'strings', network: 'string' },
  HEALTHCHECK: HEALTH_FLAGS,
};

type Form = 'maybeJson' | 'maybeJsonList' | 'words' | 'string' | 'nameVal' | 'health' | 'onbuild';

const FORMS: Record<string, Form> = {
  ADD: 'maybeJsonList',
  ARG: 'words',
  CMD: 'maybeJson',
  COPY: 'maybeJsonList',
  ENTRYPOINT: 'maybeJson',
  ENV: 'nameVal',
  EXPOSE: 'words',
  FROM: 'words',
  HEALTHCHECK: 'health',
  LABEL: 'nameVal',
  MAINTAINER: 'string',
  ONBUILD: 'onbuild',
  RUN: 'maybeJson',
  SHELL: 'maybeJson',
  STOPSIGNAL: 'string',
  USER: 'string',
  VOLUME: 'maybeJsonList',
  WORKDIR: 'string',
};

const HEREDOC_KEYWORDS = new Set(['ADD', 'COPY', 'RUN']);
const DIRECTIVES = new Set(['escape', 'syntax', 'check']);
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;
// Docker splits the keyword off (and legacy `ENV k v`) on these; not on newlines
const WHITESPACE = /[\t\v\f\r ]+/;

/** A reason without its line; the caller that knows the line turns it into the 400. */
class LineError extends Error {}

function fail(line: number, reason: string): never {
  throw invalid(`Dockerfile parse error on line ${line}: ${reason}`);
}

/** Parse a whole Dockerfile into meta ARGs and stages. `name` is only used in the empty-file message. */
export function parseDockerfile(text: string, name = 'Dockerfile'): Dockerfile {
  if (text.trim() === '') throw invalid(`the Dockerfile (${name}) cannot be empty`);
  const { escape, nodes, lastLine } = scan(text);
  if (nodes.length === 0) fail(lastLine, 'file with no instructions');
  const metaArgs: Instruction[] = [];
  const stages: Stage[] = [];
  const names = new Set<string>();
  for (const node of nodes) {
    const ins = check(node);
    if (ins.keyword === 'FROM') {
      const stage: Stage = { index: stages.length, base: ins.args[0]!, line: ins.line, instructions: [] };
      if (ins.args.length === 3) {
        const stageName = ins.args[2]!.toLowerCase();
        if (names.has(stageName)) fail(ins.line, `duplicate stage name ${JSON.stringify(stageName)}`);
        names.add(stageName);
        stage.name = stageName;
      }
      if (ins.flags.platform !== undefined) stage.platform = ins.flags.platform;
      stage.instructions.push(ins);
      stages.push(stage);
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') fail(ins.line, 'no build stage in current context');
      metaArgs.push(ins);
    } else {
      stages[stages.length - 1]!.instructions.push(ins);
    }
  }
  if (stages.length === 0) throw invalid('dockerfile contains no stages to build');
  return { escape, metaArgs, stages };
}

/**
 * Parse one instruction (as `docker commit/import --change` gives them): continuations and heredocs work,
 * no FROM is needed. Errors if the text holds no instruction or more than one.
 */
export function parseInstruction(text: string, escape = '\\'): Instruction {
  const { nodes, lastLine } = scan(text, escape);
  if (nodes.length === 0) fail(lastLine, 'file with no instructions');
  if (nodes.length > 1) fail(nodes[1]!.line, 'expected a single instruction');
  return check(nodes[0]!);
}

/**
 * Key/value pairs of ENV and LABEL (`K=V ...` or legacy `K V with spaces`) and ARG (`name` or
 * `name=default`), unexpanded with quotes kept. `value` is absent only for an ARG without a default.
 */
export function keyValues(ins: Instruction): Array<{ key: string; value?: string }> {
  try {
    return kv(ins);
  } catch (err) {
    if (err instanceof LineError) fail(ins.line, err.message);
    throw err;
  }
}

function kv(ins: Instruction): Array<{ key: string; value?: string }> {
  const k = ins.keyword;
  if (k === 'ARG') {
    if (ins.args.length === 0) throw new LineError('ARG requires at least one argument');
    return ins.args.map((w) => {
      const eq = w.indexOf('=');
      if (eq === 0) throw new LineError('ARG names can not be blank');
      return eq < 0 ? { key: w } : { key: w.slice(0, eq), value: w.slice(eq + 1) };
    });
  }
  if (k !== 'ENV' && k !== 'LABEL') throw new LineError(`${k} has no key/value arguments`);
  const pairs = nameVal(k, ins.raw, ins.args);
  if (pairs.length === 0) throw new LineError(`${k} requires at least one argument`);
  for (const p of pairs) if (p.key === '') throw new LineError(`${k} names can not be blank`);
  return pairs;
}

// the parser's split of ENV/LABEL: the first word decides between `k=v ...` and legacy `k v`
function nameVal(keyword: string, raw: string, words: string[]): Array<{ key: string; value: string }> {
  if (words.length === 0) return [];
  if (!words[0]!.includes('=')) {
    const m = WHITESPACE.exec(raw);
    if (!m) throw new LineError(`${keyword} must have two arguments`);
    return [{ key: raw.slice(0, m.index), value: raw.slice(m.index + m[0].length) }];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) throw new LineError(`Syntax error - can't find = in ${JSON.stringify(w)}. Must be of the form: name=value`);
    return { key: w.slice(0, eq), value: w.slice(eq + 1) };
  });
}

// ---------------------------------------------------------------------------------------------
// pass 1: lines to instructions

interface Node {
  keyword: string;
  line: number;
  endLine: number;
  flagWords: string[];
  json: boolean;
  args: string[];
  raw: string;
  original: string;
  heredocs: Heredoc[];
  inner?: Node;
}

function trimNewline(s: string): string {
  return s.replace(/[\r\n]+$/, '');
}

function trimLeft(s: string): string {
  return s.replace(/^\s+/u, '');
}

function isComment(s: string): boolean {
  return trimLeft(trimNewline(s)).startsWith('#');
}

function scan(text: string, fixedEscape?: string): { escape: string; nodes: Node[]; lastLine: number } {
  // keep each line's ending: heredoc bodies are taken verbatim
  const lines = text.split(/(?<=\n)/);
  if (lines.length > 0) lines[0] = lines[0]!.replace(/^\ufeff/, '');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();

  let escape = fixedEscape ?? '\\';
  if (fixedEscape === undefined) {
    // parser directives: only at the very top, ended by any other line (blank lines too)
    const seen = new Set<string>();
    for (let i = 0; i < lines.length; i++) {
      const m = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/.exec(trimLeft(trimNewline(lines[i]!)));
      if (!m || !DIRECTIVES.has(m[1]!.toLowerCase())) break;
      const key = m[1]!.toLowerCase();
      if (seen.has(key)) fail(i + 1, `only one ${key} parser directive can be used`);
      seen.add(key);
      if (key === 'escape') {
        if (m[2] !== '`' && m[2] !== '\\') fail(i + 1, `invalid escape token ${m[2]} does not match \` or \\`);
        escape = m[2];
      }
    }
  }
  const e = escape === '\\' ? '\\\\' : escape;
  // an escape as the last non-blank character continues the line; a doubled one does not
  const continuation = new RegExp(`([^${e}])${e}[ \\t]*$`);
  const trimContinuation = (s: string): [string, boolean] =>
    continuation.test(s) ? [s.replace(continuation, '$1'), false] : [s, true];

  const nodes: Node[] = [];
  let i = 0;
  while (i < lines.length) {
    const start = i + 1;
    const first = lines[i++]!;
    let [line, done] = trimContinuation(isComment(first) ? '' : trimLeft(trimNewline(first)));
    if (done && line === '') continue;
    while (!done && i < lines.length) {
      const next = lines[i++]!;
      // comments and blank lines inside a continuation are skipped
      if (isComment(next)) continue;
      const body = trimNewline(next);
      if (trimLeft(body) === '') continue;
      let more: string;
      [more, done] = trimContinuation(body);
      line += more;
    }
    const node = parseLine(line, escape, start, i);
    const target = node.keyword === 'ONBUILD' && node.inner ? node.inner : node;
    if (HEREDOC_KEYWORDS.has(target.keyword) && !target.json && line.includes('<<')) {
      for (const doc of heredocsOf(line, start)) {
        let content = '';
        let terminated = false;
        while (i < lines.length) {
          const body = lines[i++]!;
          let candidate = trimNewline(body);
          if (doc.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === doc.name) {
            terminated = true;
            break;
          }
          content += body;
        }
        if (!terminated) fail(start, 'unterminated heredoc');
        node.heredocs.push({ ...doc, content: doc.chomp ? content.replace(/^\t+/gm, '') : content });
      }
      node.endLine = i;
      if (node.inner) {
        node.inner.heredocs = node.heredocs;
        node.inner.endLine = i;
      }
    }
    nodes.push(node);
  }
  return { escape, nodes, lastLine: Math.max(1, lines.length) };
}

/** Split `KEYWORD [--flags] rest` and parse rest as the keyword's form does (Docker's line parser). */
function parseLine(line: string, escape: string, start: number, end: number): Node {
  const trimmed = line.trim();
  const m = WHITESPACE.exec(trimmed);
  const word = m ? trimmed.slice(0, m.index) : trimmed;
  let rest = m ? trimmed.slice(m.index + m[0].length) : '';
  let flagWords: string[] = [];
  if (rest !== '') [rest, flagWords] = builderFlags(rest);
  rest = rest.trim();
  const keyword = word.toUpperCase();
  const node: Node = { keyword, line: start, endLine: end, flagWords, json: false, args: [], raw: rest, original: trimmed, heredocs: [] };
  const form = FORMS[keyword];
  try {
    switch (form) {
      case undefined:
        break;
      case 'maybeJson':
      case 'maybeJsonList': {
        if (rest === '') break;
        const arr = jsonArgs(rest);
        if (arr) {
          node.json = true;
          node.args = arr;
        } else node.args = form === 'maybeJson' ? [rest] : parseWords(rest, escape);
        break;
      }
      case 'words':
        node.args = parseWords(rest, escape);
        break;
      case 'string':
        node.args = rest === '' ? [] : [rest];
        break;
      case 'nameVal':
        node.args = parseWords(rest, escape);
        nameVal(keyword, rest, node.args);
        break;
      case 'health': {
        if (rest === '') break;
        const sp = /\s/u.exec(rest);
        const typ = sp ? rest.slice(0, sp.index) : rest;
        const cmd = sp ? trimLeft(rest.slice(sp.index)) : '';
        node.args = [typ];
        if (cmd !== '') {
          const arr = jsonArgs(cmd);
          node.json = !!arr;
          node.args.push(...(arr ?? [cmd]));
        }
        break;
      }
      case 'onbuild':
        if (rest === '') break;
        node.args = [rest];
        node.inner = parseLine(rest, escape, start, end);
        break;
    }
  } catch (err) {
    if (err instanceof LineError) fail(start, err.message);
    throw err;
  }
  return node;
}

/** The exec form: a JSON array of strings. Other text is shell form; a JSON array of non-strings is an error. */
function jsonArgs(rest: string): string[] | undefined {
  const s = trimLeft(rest);
  if (!s.startsWith('[')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v)) return undefined;
  if (!v.every((x) => typeof x === 'string')) {
    throw new LineError('when using JSON array syntax, arrays must be comprised of strings only');
  }
  return v as string[];
}

/** Leading `--flag[=value]` words (quotes and `\` understood); returns the rest of the line and the words. */
function builderFlags(line: string): [string, string[]] {
  const words: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < line.length && /\s/u.test(line[pos]!)) pos++;
    if (pos >= line.length) return ['', words];
    if (!line.startsWith('--', pos)) return [line.slice(pos), words];
    let word = '';
    let quote = '';
    let quoted = false;
    for (; pos < line.length; pos++) {
      let ch = line[pos]!;
      if (!quote && /\s/u.test(ch)) break;
      if (quote && ch === quote) {
        quote = '';
        continue;
      }
      if (!quote && (ch === '"' || ch === "'")) {
        quote = ch;
        quoted = true;
        continue;
      }
      if (ch === '\\') {
        if (pos + 1 === line.length) continue;
        ch = line[++pos]!;
      }
      word += ch;
    }
    // a lone `--` ends the flags
    if (word === '--') return [line.slice(pos), words];
    if (quoted || word !== '') words.push(word);
  }
}

/**
 * Split into words at unquoted whitespace, keeping quotes and escapes in the words (Docker's parser does
 * this for ENV/LABEL/ARG; here it is also used for the other word lists, where Docker splits at every
 * blank and then usually fails on the quote, so a quoted path with spaces works here).
 */
export function parseWords(rest: string, escape = '\\'): string[] {
  const words: string[] = [];
  const chars = Array.from(rest);
  let word = '';
  let inWord = false;
  let blankOK = false;
  let quote = '';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (quote) {
      if (ch === quote) quote = '';
      else if (ch === escape && quote !== "'") {
        // the escape stays, with what it escapes (an escape at the end is dropped)
        if (i + 1 === chars.length) continue;
        word += ch + chars[++i]!;
        continue;
      }
      word += ch;
      continue;
    }
    if (/\s/u.test(ch)) {
      if (inWord && (blankOK || word !== '')) words.push(word);
      word = '';
      inWord = false;
      blankOK = false;
      continue;
    }
    inWord = true;
    if (ch === '"' || ch === "'") {
      quote = ch;
      blankOK = true;
      word += ch;
      continue;
    }
    if (ch === escape) {
      if (i + 1 === chars.length) continue;
      word += ch + chars[++i]!;
      continue;
    }
    word += ch;
  }
  if (inWord && (blankOK || word !== '')) words.push(word);
  return words;
}

const noEnv = () => undefined;

/** The heredocs a line opens, in order: words `<<NAME`, `<<-NAME`, `N<<NAME`, NAME possibly quoted. */
function heredocsOf(line: string, lineNo: number): Array<Omit<Heredoc, 'content'>> {
  let words: string[];
  try {
    words = lex(line, noEnv, { rawQuotes: true, rawEscapes: true }).words;
  } catch {
    // Docker ignores a line its lexer cannot split: no heredocs then
    return [];
  }
  const docs: Array<Omit<Heredoc, 'content'>> = [];
  for (const w of words) {
    const d = heredocWord(w, lineNo);
    if (d) docs.push(d);
  }
  return docs;
}

function heredocWord(word: string, lineNo: number): Omit<Heredoc, 'content'> | undefined {
  const m = /^(\d*)<<(-?)([^<]*)$/.exec(word);
  if (!m || m[3] === '') return undefined;
  let plain: string[];
  let raw: string[];
  try {
    plain = lex(m[3]!, noEnv, { skipUnsetEnv: true }).words;
    if (plain.length !== 1) return undefined;
    raw = lex(m[3]!, noEnv, { skipUnsetEnv: true, rawQuotes: true }).words;
  } catch (err) {
    fail(lineNo, err instanceof Error ? err.message : String(err));
  }
  const quotes = (s: string) => s.split('').filter((c) => c === '"' || c === "'").length;
  // quoting any part of the delimiter turns expansion off, as in a shell
  return { name: plain[0]!, expand: quotes(plain[0]!) === quotes(raw[0] ?? ''), chomp: m[2] === '-' };
}

// ---------------------------------------------------------------------------------------------
// pass 2: per-instruction checks

function check(node: Node): Instruction {
  try {
    return checkNode(node);
  } catch (err) {
    if (err instanceof LineError) fail(node.line, err.message);
    throw err;
  }
}

function checkNode(node: Node): Instruction {
  const k = node.keyword;
  if (!(k in FORMS)) throw new LineError(`unknown instruction: ${k}`);
  const { flags, flagValues } = parseFlags(k, node.flagWords, node.args);
  const ins: Instruction = {
    keyword: k,
    line: node.line,
    endLine: node.endLine,
    flags,
    flagValues,
    json: node.json,
    args: node.args,
    raw: node.raw,
    original: node.original,
    heredocs: node.heredocs,
  };
  const n = node.args.length;
  switch (k) {
    case 'ENV':
    case 'LABEL':
    case 'ARG':
      kv(ins);
      break;
    case 'MAINTAINER':
    case 'USER':
    case 'WORKDIR':
    case 'STOPSIGNAL':
      if (n !== 1) throw new LineError(`${k} requires exactly one argument`);
      break;
    case 'EXPOSE':
      if (n === 0) throw new LineError('EXPOSE requires at least one argument');
      break;
    case 'ADD':
    case 'COPY': {
      if (n < 2) {
        throw new LineError(`${k} requires at least two arguments, but only one was provided. Destination could not be determined`);
      }
      if (!node.json && heredocWord(node.args[n - 1]!, node.line)) throw new LineError(`${k} cannot accept a heredoc as a destination`);
      break;
    }
    case 'FROM':
      if (n === 3 && node.args[1]!.toLowerCase() === 'as') {
        if (!STAGE_NAME.test(node.args[2]!.toLowerCase())) {
          throw new LineError(
            `invalid name for build stage: ${JSON.stringify(node.args[2])}, name can't start with a number or contain symbols`,
          );
        }
      } else if (n !== 1) throw new LineError('FROM requires either one or three arguments');
      break;
    case 'VOLUME':
      if (n === 0) throw new LineError('VOLUME requires at least one argument');
      if (node.args.some((v) => v.trim() === '')) throw new LineError('VOLUME specified can not be an empty string');
      break;
    case 'SHELL':
      if (!node.json && n > 0) throw new LineError('SHELL requires the arguments to be in JSON form');
      if (n === 0) throw new LineError('SHELL requires at least one argument');
      break;
    case 'HEALTHCHECK':
      checkHealth(ins);
      break;
    case 'ONBUILD': {
      if (n === 0 || !node.inner) throw new LineError('ONBUILD requires at least one argument');
      const trigger = node.inner.keyword;
      if (trigger === 'ONBUILD') throw new LineError('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
      if (trigger === 'FROM' || trigger === 'MAINTAINER') throw new LineError(`${trigger} isn't allowed as an ONBUILD trigger`);
      ins.onbuild = checkNode(node.inner);
      break;
    }
  }
  return ins;
}

function parseFlags(
  keyword: string,
  words: string[],
  args: string[],
): { flags: Record<string, string>; flagValues: Record<string, string[]> } {
  const flags: Record<string, string> = {};
  const flagValues: Record<string, string[]> = {};
  // Docker reads no flags for HEALTHCHECK NONE
  if (keyword === 'HEALTHCHECK' && args[0]?.toUpperCase() === 'NONE') return { flags, flagValues };
  const allowed = FLAGS[keyword] ?? {};
  for (const w of words) {
    if (!w.startsWith('--')) throw new LineError(`arg should start with -- : ${w}`);
    const body = w.slice(2);
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    const hasValue = eq >= 0;
    let value = hasValue ? body.slice(eq + 1) : '';
    const type = Object.hasOwn(allowed, name) ? allowed[name] : undefined;
    if (!type) throw new LineError(`unknown flag: ${name}`);
    if (name in flags && type !== 'strings') throw new LineError(`duplicate flag specified: ${name}`);
    if (type === 'bool') {
      if (hasValue && value === '') throw new LineError(`missing a value on flag: ${name}`);
      const v = value.toLowerCase();
      if (v !== '' && v !== 'true' && v !== 'false') throw new LineError(`expecting boolean value for flag ${name}, not: ${value}`);
      value = v === 'false' ? 'false' : 'true';
    } else if (!hasValue) throw new LineError(`missing a value on flag: ${name}`);
    flags[name] = value;
    (flagValues[name] ??= []).push(value);
  }
  return { flags, flagValues };
}

function checkHealth(ins: Instruction): void {
  const [typ, ...cmd] = ins.args;
  if (typ === undefined) throw new LineError('HEALTHCHECK requires at least one argument');
  const t = typ.toUpperCase();
  if (t === 'NONE') {
    if (cmd.length > 0) throw new LineError('HEALTHCHECK NONE takes no arguments');
    return;
  }
  if (t !== 'CMD') throw new LineError(`Unknown type ${JSON.stringify(t)} in HEALTHCHECK (try CMD)`);
  if (cmd.length === 0) throw new LineError('Missing command after HEALTHCHECK CMD');
  for (const f of ['interval', 'timeout', 'start-period', 'start-interval']) {
    const v = ins.flags[f];
    if (v === undefined || v === '') continue;
    const ns = parseGoDuration(v);
    if (ns === undefined) throw new LineError(`time: invalid duration ${JSON.stringify(v)}`);
    // 0 means "the default"; anything else must be at least Docker's minimum of 1ms
    if (ns !== 0 && ns < 1e6) throw new LineError(`Interval ${JSON.stringify(f)} cannot be less than 1ms`);
  }
  const r = ins.flags.retries;
  if (r !== undefined && r !== '') {
    if (!/^[+-]?\d+$/.test(r)) throw new LineError(`strconv.ParseInt: parsing ${JSON.stringify(r)}: invalid syntax`);
    if (Number(r) < 0) throw new LineError(`--retries cannot be negative (${Number(r)})`);
  }
}
