/**
 * The authorizer in the shape the registry server's extension point (hooks.ts `Authorizer`) takes:
 * `authorize(req, scope)` that resolves to allow, or throws a RegistryError (UNAUTHORIZED with its
 * WWW-Authenticate header, or DENIED). Mode none becomes the server's own allowAll, so its hot path
 * stays synchronous.
 */
import type { IncomingMessage } from 'node:http';
import { regError } from '../errors.js';
import { allowAll, type Authorizer, type Scope } from '../hooks.js';
import type { RegistryAuthorizer } from './authorizer.js';

/** Distribution's error detail for auth errors: what was asked. */
function detail(scope: Scope | undefined): unknown {
  if (!scope) return undefined;
  return scope.actions.map((a) => ({ Type: scope.type, Name: scope.name, Action: a }));
}

export function toServerAuthorizer(a: RegistryAuthorizer): Authorizer {
  if (a.mode === 'none') return allowAll;
  return {
    async authorize(req: IncomingMessage, scope: Scope | undefined): Promise<void> {
      const r = await a.authorizeScope(req, scope && { type: scope.type, name: scope.name, actions: [...scope.actions] });
      if (r.ok) return;
      throw regError(r.code, r.message, detail(scope), r.challenge ? { 'WWW-Authenticate': r.challenge } : undefined);
    },
  };
}
