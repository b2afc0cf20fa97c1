/**
 * Access policy: which account may do what on which repositories.
 *
 * Rules name a subject (`user`: one name, a list, or `*` for any authenticated account; or
 * `anonymous: true`), repository glob patterns (`*` and `?` stay within one path component, `**`
 * crosses `/`), and the actions granted (`*` = pull, push, delete; `[]` grants nothing).
 *
 * - Anonymous clients get the union of the anonymous rules that match the repository, else nothing.
 * - An authenticated account gets the union of the user rules that match it and the repository;
 *   when none does, the default (`defaultActions`: pull and push, no delete). Whatever anonymous
 *   clients may do, an authenticated account may too.
 * - `registry:catalog:*` (`GET /v2/_catalog`) is governed by `catalog` (any authenticated account by
 *   default, anonymous clients not).
 *
 * Example:
 *   {"rules": [
 *     {"user": "alice", "repos": "alice/**", "actions": ["pull", "push", "delete"]},
 *     {"user": "*", "repos": "alice/**", "actions": ["pull"]},
 *     {"anonymous": true, "repos": "public/*", "actions": ["pull"]}]}
 */
import { z } from 'zod';
import { expandActions, intersectActions, isRepositoryType, type Action, type ResourceScope } from './scope.js';

const ActionSchema = z.enum(['pull', 'push', 'delete', '*']);
const PatternSchema = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[A-Za-z0-9._\-/:*?]+$/, 'a repository pattern holds name characters, `*`, `**` and `?` only');
const oneOrMany = <T extends z.ZodType>(t: T) => z.union([t, z.array(t).min(1)]);

export const RuleSchema = z
  .strictObject({
    /** An account name, several, or `*` for any authenticated account. */
    user: oneOrMany(z.string().min(1)).optional(),
    /** A rule for clients that sent no credentials. */
    anonymous: z.literal(true).optional(),
    repos: oneOrMany(PatternSchema),
    actions: z.array(ActionSchema),
  })
  .refine((r) => (r.user === undefined) !== (r.anonymous === undefined), {
    message: 'a rule names either `user` or `anonymous: true`',
  });

export const PolicyConfigSchema = z.strictObject({
  rules: z.array(RuleSchema).default([]),
  /** What an authenticated account may do on a repository no user rule matches. */
  defaultActions: z.array(ActionSchema).default(['pull', 'push']),
  /** Who may list the catalog: account names or `*` (any authenticated), and whether anonymous clients may. */
  catalog: z
    .strictObject({
      users: z.array(z.string().min(1)).default(['*']),
      anonymous: z.boolean().default(false),
    })
    .prefault({}),
});

export type PolicyRule = z.infer<typeof RuleSchema>;
export type PolicyConfig = z.input<typeof PolicyConfigSchema>;
type ParsedPolicy = z.infer<typeof PolicyConfigSchema>;

export class PolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyError';
  }
}

/** Validate a policy config; throws PolicyError naming the first problem. */
export function parsePolicyConfig(input: unknown): ParsedPolicy {
  const r = PolicyConfigSchema.safeParse(input ?? {});
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new PolicyError(`auth policy: ${i.path.join('.') || 'policy'}: ${i.message}`);
  }
  return r.data;
}

/** Compile a repository glob: `**` matches across `/`, `*` and `?` within one component. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // `a/**/b` also matches `a/b`
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else {
          re += '.*';
        }
      } else {
        re += '[^/]*';
      }
    } else if (c === '?') {
      re += '[^/]';
    } else {
      re += c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`);
}

interface CompiledRule {
  users: Set<string> | 'any' | 'anonymous';
  repos: RegExp[];
  actions: Action[];
}

const asList = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

export class Policy {
  private readonly rules: CompiledRule[];
  private readonly defaults: Action[];
  private readonly catalogUsers: Set<string> | 'any';
  private readonly catalogAnonymous: boolean;

  constructor(config: PolicyConfig | ParsedPolicy = {}) {
    const c = parsePolicyConfig(config);
    this.rules = c.rules.map((r) => {
      const users = asList(r.user ?? []);
      return {
        users: r.anonymous ? 'anonymous' : users.includes('*') ? 'any' : new Set(users),
        repos: asList(r.repos).map(globToRegExp),
        actions: expandActions('repository', r.actions),
      };
    });
    this.defaults = expandActions('repository', c.defaultActions);
    this.catalogUsers = c.catalog.users.includes('*') ? 'any' : new Set(c.catalog.users);
    this.catalogAnonymous = c.catalog.anonymous;
  }

  /** Whether any rule grants anonymous clients something (then `GET /v2/` may be worth answering them). */
  get hasAnonymousGrants(): boolean {
    return this.catalogAnonymous || this.rules.some((r) => r.users === 'anonymous' && r.actions.length > 0);
  }

  /**
   * Everything `account` (undefined: an anonymous client) may do on the resource `scope` names
   * (its `actions` are not looked at): canonical, expanded actions, [] for nothing.
   */
  allowed(account: string | undefined, scope: Pick<ResourceScope, 'type' | 'name'>): Action[] {
    if (scope.type === 'registry' && scope.name === 'catalog') {
      const ok = account === undefined ? this.catalogAnonymous : this.catalogAnonymous || this.catalogUsers === 'any' || this.catalogUsers.has(account);
      return ok ? ['*'] : [];
    }
    if (!isRepositoryType(scope.type)) return [];
    const set = new Set<Action>();
    let userRuleMatched = false;
    for (const r of this.rules) {
      if (!r.repos.some((re) => re.test(scope.name))) continue;
      if (r.users === 'anonymous') {
        for (const a of r.actions) set.add(a);
      } else if (account !== undefined && (r.users === 'any' || r.users.has(account))) {
        userRuleMatched = true;
        for (const a of r.actions) set.add(a);
      }
    }
    if (account !== undefined && !userRuleMatched) for (const a of this.defaults) set.add(a);
    return expandActions(scope.type, [...set]);
  }

  /** The actions of `scope` that `account` may do: the intersection of asked and allowed. */
  grant(account: string | undefined, scope: ResourceScope): Action[] {
    return intersectActions(scope.type, scope.actions, this.allowed(account, scope));
  }
}
