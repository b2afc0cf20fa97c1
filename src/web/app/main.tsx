/**
 * The dashboard's shell: the login (a token from the URL's fragment, the tab's sessionStorage, or typed in),
 * the navigation, and the page of the address's fragment (#/hosts …). One live stream for the whole tab.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { forget, HttpError, login, setOnUnauthorized, setToken, takeTokenFromUrl, token, type Role } from './api.js';
import { live, useLive } from './live.js';
import { Overview } from './pages/overview.js';
import { Hosts } from './pages/hosts.js';
import { Containers } from './pages/containers.js';
import { Releases } from './pages/releases.js';
import { Images } from './pages/images.js';
import { P2P } from './pages/p2p.js';
import './style.css';

const PAGES: Array<{ path: string; title: string }> = [
  { path: 'overview', title: 'Overview' },
  { path: 'hosts', title: 'Hosts' },
  { path: 'containers', title: 'Containers' },
  { path: 'releases', title: 'Services & releases' },
  { path: 'images', title: 'Images & registries' },
  { path: 'p2p', title: 'P2P traffic' },
];

const pageOf = () => (/^#\/([a-z0-9]+)/.exec(location.hash)?.[1] ?? 'overview');

function Login(p: { onLogin(role: Role): void; why?: string }) {
  const [t, setT] = useState('');
  const [err, setErr] = useState(p.why ?? '');
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const role = await login(t.trim());
      setToken(t.trim());
      p.onLogin(role);
    } catch (x) {
      setErr((x as Error).message);
    }
  };
  return (
    <main class="login">
      <form onSubmit={(e) => void submit(e)} aria-labelledby="h-login">
        <h1 id="h-login">Sampan dashboard</h1>
        <p>Sign in with a browser token from <code>sampan cluster token --ui</code>.</p>
        <label>Token <input type="password" autoComplete="off" required value={t} onInput={(e) => setT((e.target as HTMLInputElement).value)} /></label>
        <button type="submit" class="primary">Sign in</button>
        {err && <p class="error" role="alert">{err}</p>}
      </form>
    </main>
  );
}

function Status() {
  useLive();
  return <span class={`conn ${live.connected ? 'ok' : 'bad'}`} role="status">{live.connected ? 'live' : 'connecting…'}</span>;
}

function App() {
  const [role, setRole] = useState<Role | undefined>();
  const [checking, setChecking] = useState(!!token());
  const [why, setWhy] = useState<string>();
  const [waiting, setWaiting] = useState<string>();
  const [page, setPage] = useState(pageOf());
  useEffect(() => {
    setOnUnauthorized(() => {
      forget();
      live.stop();
      setRole(undefined);
      setWhy('The token was refused (revoked?): sign in again.');
    });
    // only a 401 means a bad token; a manager that does not answer yet (restarting, its etcd slow) is asked again
    const checkToken = async (t: string): Promise<void> => {
      try {
        setRole(await login(t));
      } catch (err) {
        if (err instanceof HttpError && err.status === 401) {
          live.stop();
          forget();
          setWhy('The token was refused: sign in again.');
        } else {
          setWaiting(`The manager does not answer (${(err as Error).message}): trying again…`);
          setTimeout(() => void checkToken(t), 2000);
          return;
        }
      }
      setChecking(false);
    };
    const t = token();
    // the stream opens beside the token's check, not after it: its snapshot is most of the first render's wait
    if (t) live.start();
    if (t) void checkToken(t);
    const onHash = () => setPage(pageOf());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  useEffect(() => {
    if (role && !live.running) live.start();
  }, [role]);
  useEffect(() => {
    document.title = `${PAGES.find((p) => p.path === page)?.title ?? 'Sampan'} · Sampan`;
  }, [page]);
  if (checking) return <p class="muted" role="status">{waiting ?? 'Signing in…'}</p>;
  if (!role) return <Login onLogin={setRole} why={why} />;
  return (
    <div class="shell">
      <nav aria-label="pages">
        <div class="brand">Sampan</div>
        <ul>
          {PAGES.map((p) => <li key={p.path}><a href={`#/${p.path}`} aria-current={page === p.path ? 'page' : undefined}>{p.title}</a></li>)}
        </ul>
        <div class="who"><Status /> <span>{role === 'admin' ? 'admin' : 'read-only'}</span>
          <button onClick={() => { forget(); live.stop(); setRole(undefined); setWhy(undefined); }}>Sign out</button></div>
      </nav>
      <main id="main">
        {page === 'overview' && <Overview />}
        {page === 'hosts' && <Hosts />}
        {page === 'containers' && <Containers />}
        {page === 'releases' && <Releases role={role} />}
        {page === 'images' && <Images />}
        {page === 'p2p' && <P2P />}
      </main>
    </div>
  );
}

takeTokenFromUrl();
render(<App />, document.getElementById('app')!);
