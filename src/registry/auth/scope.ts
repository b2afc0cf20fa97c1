/**
 * Docker registry token scopes: `repository:samalba/my-app:pull,push`, `repository(plugin):name:pull`,
 * `registry:catalog:*`. Parsing, formatting, and the intersection of asked and allowed actions.
 *
 * Grammar (Docker registry token scope documentation):
 *   scope         := resourcescope [ ' ' resourcescope ]*
 *   resourcescope := resourcetype ":" resourcename ":" action [ ',' action ]*
 *   resourcetype  := /[a-z0-9]+/ [ '(' /[a-z0-9]+/ ')' ]
 *   resourcename  := [ hostname '/' ] component [ '/' component ]*   (a hostname may hold ':port')
 *   action        := lowercase letters, or `*`
 * So the type ends at the first ':' and the actions start after the last one; the name is what lies
 * between (it may itself contain ':' when it starts with a host:port).
 */

/** The actions of the repository type. `*` stands for all of them. */
export const REPOSITORY_ACTIONS = ['pull', 'push', 'delete'] as const;
export type RepositoryAction = (typeof REPOSITORY_ACTIONS)[number];
/** An action as it appears in a scope or a token (`pull`, `push`, `delete`, `*`, or another type's own). */
export type Action = string;

export interface ResourceScope {
  /** `repository`, `registry`, ... (without the class). */
  type: string;
  /** The class in `repository(plugin)`, if any. */
  class?: string;
  /** `samalba/my-app`, `catalog`. */
  name: string;
  /** Distinct, in the order given (or canonical order after an intersection). */
  actions: Action[];
}

export class ScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScopeError';
  }
}

const TYPE_RE = /^([a-z0-9]+)(?:\(([a-z0-9]+)\))?$/;
const ACTION_RE = /^(?:[a-z]*|\*)$/;
// component characters of a name, a host and a port; no spaces, quotes or control characters
const NAME_RE = /^[A-Za-z0-9._\-/:]+$/;
const MAX_SCOPE_LENGTH = 1024;

/** Whether `type` (with its class stripped) is the repository type, whose `*` means pull, push, delete. */
export function isRepositoryType(type: string): boolean {
  return type === 'repository';
}

/** Parse one resource scope. Throws ScopeError on anything malformed. */
export function parseScope(text: string): ResourceScope {
  if (text.length === 0) throw new ScopeError('empty scope');
  if (text.length > MAX_SCOPE_LENGTH) throw new ScopeError('scope too long');
  const first = text.indexOf(':');
  const last = text.lastIndexOf(':');
  if (first < 0 || last === first) throw new ScopeError(`invalid scope ${JSON.stringify(text)}: expected TYPE:NAME:ACTIONS`);
  const typePart = text.slice(0, first);
  const name = text.slice(first + 1, last);
  const actionPart = text.slice(last + 1);
  const m = TYPE_RE.exec(typePart);
  if (!m) throw new ScopeError(`invalid scope ${JSON.stringify(text)}: bad resource type ${JSON.stringify(typePart)}`);
  if (name === '' || !NAME_RE.test(name)) throw new ScopeError(`invalid scope ${JSON.stringify(text)}: bad resource name`);
  const actions: Action[] = [];
  for (const a of actionPart.split(',')) {
    if (!ACTION_RE.test(a)) throw new ScopeError(`invalid scope ${JSON.stringify(text)}: bad action ${JSON.stringify(a)}`);
    if (a !== '' && !actions.includes(a)) actions.push(a);
  }
  const scope: ResourceScope = { type: m[1]!, name, actions };
  if (m[2] !== undefined) scope.class = m[2];
  return scope;
}

/**
 * Parse the `scope` parameters of a token request: each value may itself hold several scopes
 * separated by spaces (the POST form's single `scope` field). Scopes naming the same resource are
 * merged (their actions united).
 */
export function parseScopes(values: string | readonly string[] | undefined | null): ResourceScope[] {
  if (values === undefined || values === null) return [];
  const list = typeof values === 'string' ? [values] : values;
  const out: ResourceScope[] = [];
  for (const v of list) {
    for (const part of v.split(' ')) {
      if (part === '') continue;
      const s = parseScope(part);
      const same = out.find((o) => sameResource(o, s));
      if (same) {
        for (const a of s.actions) if (!same.actions.includes(a)) same.actions.push(a);
      } else {
        out.push(s);
      }
    }
  }
  return out;
}

export function sameResource(a: Pick<ResourceScope, 'type' | 'class' | 'name'>, b: Pick<ResourceScope, 'type' | 'class' | 'name'>): boolean {
  return a.type === b.type && (a.class ?? '') === (b.class ?? '') && a.name === b.name;
}

/** `type[(class)]`. */
export function formatType(s: Pick<ResourceScope, 'type' | 'class'>): string {
  return s.class ? `${s.type}(${s.class})` : s.type;
}

/** `type[(class)]:name:a,b`. */
export function formatScope(s: ResourceScope): string {
  return `${formatType(s)}:${s.name}:${s.actions.join(',')}`;
}

/** Several scopes, space-separated (as in a challenge's or a POST form's `scope`). */
export function formatScopes(list: readonly ResourceScope[]): string {
  return list.map(formatScope).join(' ');
}

/**
 * The concrete actions a list stands for: for the repository type `*` expands to pull, push and
 * delete (and is dropped); other types keep `*` as an action of its own (`registry:catalog:*`).
 * Distinct; canonical actions first in canonical order, then the others in the order given.
 */
export function expandActions(type: string, actions: readonly Action[]): Action[] {
  const set = new Set<Action>();
  for (const a of actions) {
    if (a === '*' && isRepositoryType(type)) for (const r of REPOSITORY_ACTIONS) set.add(r);
    else if (a !== '') set.add(a);
  }
  return canonicalOrder(set);
}

function canonicalOrder(set: ReadonlySet<Action>): Action[] {
  const out: Action[] = [];
  for (const r of REPOSITORY_ACTIONS) if (set.has(r)) out.push(r);
  for (const a of set) if (!(REPOSITORY_ACTIONS as readonly string[]).includes(a)) out.push(a);
  return out;
}

/**
 * The actions both asked and allowed, with `*` expanded for repositories (so a token never carries
 * a repository `*`: a registry that checks actions literally still understands it).
 */
export function intersectActions(type: string, requested: readonly Action[], allowed: readonly Action[]): Action[] {
  const want = expandActions(type, requested);
  const have = new Set(expandActions(type, allowed));
  return want.filter((a) => have.has(a));
}

/** Whether `granted` covers every action in `needed` (`*` expanded for repositories). */
export function coversActions(type: string, granted: readonly Action[], needed: readonly Action[]): boolean {
  const have = new Set(expandActions(type, granted));
  return expandActions(type, needed).every((a) => have.has(a));
}

/** The scope the registry asks for a request on a repository. */
export function repositoryScope(name: string, actions: readonly Action[]): ResourceScope {
  return { type: 'repository', name, actions: [...actions] };
}

/** `registry:catalog:*`, the scope of `GET /v2/_catalog`. */
export function catalogScope(): ResourceScope {
  return { type: 'registry', name: 'catalog', actions: ['*'] };
}
