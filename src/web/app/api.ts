/**
 * The page's link to the manager: the token (from the URL's fragment, then the tab's sessionStorage), JSON
 * requests with it as a bearer token, and the one live stream (server-sent events read through fetch, since
 * EventSource cannot send an Authorization header and the token must never be put in a URL).
 */
const KEY = 'sampan.token';

export type Role = 'read' | 'admin';

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Takes `#token=…` off the address bar (history.replaceState) into sessionStorage: the link of `sampan cluster token --ui`. */
export function takeTokenFromUrl(): void {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(KEY, decodeURIComponent(m[1]!));
  history.replaceState(null, '', location.pathname + location.search);
}

export const token = (): string | null => sessionStorage.getItem(KEY);
export const setToken = (t: string): void => sessionStorage.setItem(KEY, t);
export const forget = (): void => sessionStorage.removeItem(KEY);

/** Told when the server refuses the token (revoked, expired): the page shows the login box again. */
export let onUnauthorized: () => void = () => undefined;
export const setOnUnauthorized = (f: () => void): void => {
  onUnauthorized = f;
};

export async function request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token() ?? ''}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' });
  if (res.status === 401) onUnauthorized();
  if (!res.ok) {
    let msg = res.statusText;
    try {
      const j = (await res.json()) as { message?: string; error?: { message?: string } };
      msg = j.message ?? j.error?.message ?? msg;
    } catch {
      // not JSON: the status text says enough
    }
    throw new HttpError(res.status, msg);
  }
  return res;
}

export async function json<T>(path: string, method = 'GET', body?: unknown): Promise<T> {
  const res = await request(method, path, body);
  return (res.status === 204 ? undefined : await res.json()) as T;
}

/** Checks a token; answers its role (401: a wrong token). */
export async function login(t: string): Promise<Role> {
  const res = await fetch('/sampan/v1/ui/login', { method: 'POST', headers: { Authorization: `Bearer ${t}` } });
  if (!res.ok) throw new HttpError(res.status, res.status === 401 ? 'this token is not valid (or was revoked)' : res.statusText);
  return ((await res.json()) as { role: Role }).role;
}

/** Reads server-sent events from `path` until `signal` aborts; reconnects after a loss (2 s). */
export async function sse(path: string, onEvent: (type: string, data: string) => void, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      const res = await request('GET', path, undefined, signal);
      if (!performance.getEntriesByName(`sampan:open ${path}`).length) performance.mark(`sampan:open ${path}`);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      // where the search for the next event's end resumes: a 10 MB snapshot comes in many chunks, and scanning
      // the whole buffer again at each one would cost seconds
      let from = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let at: number;
        while ((at = buf.indexOf('\n\n', from)) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          from = 0;
          let type = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length) onEvent(type, data.join('\n'));
        }
        from = Math.max(0, buf.length - 1);
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof HttpError && (err.status === 401 || err.status === 404)) return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}
