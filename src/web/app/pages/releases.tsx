/**
 * Services' releases, as the release routes (/sampan/v1/releases…) describe them: the list and history, and one
 * release's batches and instances. A release that moves is followed on its own watch stream while it is open;
 * the buttons (Confirm, Pause, Resume, Roll back) are an admin's only, and the server refuses them to a
 * read-only token anyway (403).
 */
import { useEffect, useState } from 'preact/hooks';
import { HttpError, json, sse, type Role } from '../api.js';
import { ago } from '../format.js';

export interface Release {
  id: string;
  service: string;
  image: string;
  previousImage?: string;
  policy?: unknown;
  state: 'running' | 'waiting-confirm' | 'paused' | 'rolling-back' | 'rolled-back' | 'done' | 'failed';
  total: number;
  updated: number;
  failed: number;
  inFlight: number;
  stragglers?: number;
  prePulled?: number;
  batches: Array<{ n: number; slots: number[] | number; startedAt?: string; endedAt?: string }>;
  instances: Array<{ slot: number; node: string; state: string; image: string; startMs?: number }>;
  events: Array<{ time: string; type: string; message: string; user?: string }>;
  createdAt: string;
  confirmedBy?: string;
  confirmedAt?: string;
  finishedAt?: string;
}

const LIVE = new Set(['running', 'waiting-confirm', 'paused', 'rolling-back']);
const ACTIONS: Record<string, Array<[string, string]>> = {
  'waiting-confirm': [['confirm', 'Confirm'], ['pause', 'Pause'], ['rollback', 'Roll back']],
  running: [['pause', 'Pause'], ['rollback', 'Roll back']],
  paused: [['resume', 'Resume'], ['rollback', 'Roll back']],
};

function Progress(p: { r: Release }) {
  const v = p.r.total ? Math.round((p.r.updated / p.r.total) * 100) : 0;
  return (
    <div class="bar" role="progressbar" aria-label={`${p.r.service} progress`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={v}>
      <div style={{ width: `${v}%` }} />
    </div>
  );
}

function Detail(p: { service: string; role: Role }) {
  const [r, setR] = useState<Release>();
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    const ac = new AbortController();
    json<Release>(`/sampan/v1/releases/${encodeURIComponent(p.service)}`).then((x) => {
      setR(x);
      // followed while it moves: each event carries the record as it is now
      if (LIVE.has(x.state)) void sse(`/sampan/v1/releases/${encodeURIComponent(p.service)}/watch`, (_t, data) => {
        try {
          const rec = JSON.parse(data) as Release | { release: Release };
          setR('release' in rec ? rec.release : rec);
        } catch {
          // a line that is not a record (a comment, a heartbeat)
        }
      }, ac.signal);
    }, (e: Error) => setErr(e.message));
    return () => ac.abort();
  }, [p.service]);
  const act = async (a: string) => {
    setBusy(true);
    try {
      const rec = await json<Release | undefined>(`/sampan/v1/releases/${encodeURIComponent(p.service)}/${a}`, 'POST');
      if (rec && 'state' in rec) setR(rec);
      setErr('');
    } catch (e) {
      setErr((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  if (err && !r) return <p class="error" role="alert">{err}</p>;
  if (!r) return <p class="muted">Loading…</p>;
  return (
    <div class="panel" aria-label={`release of ${r.service}`} data-release-state={r.state}>
      <h2>{r.service}: {r.previousImage ? `${r.previousImage} → ` : ''}{r.image}</h2>
      <p><span class={`pill state-${r.state}`}>{r.state}</span> {r.updated}/{r.total} updated, {r.failed} failed, {r.inFlight} in flight
        {r.prePulled !== undefined && `, ${r.prePulled} pre-pulled`}{r.confirmedBy && `, confirmed by ${r.confirmedBy}`}</p>
      <Progress r={r} />
      {p.role === 'admin' && ACTIONS[r.state] && (
        <div class="toolbar" role="group" aria-label="release actions">
          {ACTIONS[r.state]!.map(([a, label]) => <button key={a} disabled={busy} class={a === 'confirm' ? 'primary' : a === 'rollback' ? 'danger' : ''} onClick={() => void act(a)}>{label}</button>)}
        </div>
      )}
      {r.state === 'waiting-confirm' && p.role !== 'admin' && <p class="muted">Waiting for an admin to confirm.</p>}
      {err && <p class="error" role="alert">{err}</p>}
      <h3>Batches</h3>
      <ol class="batches">
        {r.batches.map((b) => <li key={b.n}>batch {b.n}: {Array.isArray(b.slots) ? b.slots.length : b.slots} slots {b.endedAt ? `done ${ago(b.endedAt)}` : b.startedAt ? 'running' : 'waiting'}</li>)}
      </ol>
      <h3>Instances</h3>
      <div class="instances" role="list">
        {r.instances.map((i) => <span role="listitem" key={i.slot} class={`inst ${i.state}`} title={`slot ${i.slot} on ${i.node}: ${i.state} (${i.image})`}>{i.slot}</span>)}
      </div>
      <h3>Events</h3>
      <ul class="events">
        {[...r.events].reverse().slice(0, 50).map((e, k) => <li key={k}><time>{new Date(e.time).toLocaleTimeString()}</time> {e.type}: {e.message}{e.user && ` (${e.user})`}</li>)}
      </ul>
    </div>
  );
}

export function Releases(p: { role: Role }) {
  const [list, setList] = useState<Release[]>();
  const [err, setErr] = useState('');
  const [absent, setAbsent] = useState(false);
  const [open, setOpen] = useState<string>();
  useEffect(() => {
    json<Release[]>('/sampan/v1/releases').then((l) => setList(l), (e: Error) => (e instanceof HttpError && e.status === 404 ? setAbsent(true) : setErr(e.message)));
  }, []);
  return (
    <section aria-labelledby="h-releases">
      <h1 id="h-releases">Services &amp; releases</h1>
      {absent && <p class="muted">This manager has no release routes (/sampan/v1/releases): releases appear here once it does.</p>}
      {err && <p class="error" role="alert">{err}</p>}
      {open && <Detail service={open} role={p.role} />}
      {list && (
        <table class="table">
          <thead><tr><th scope="col">Service</th><th scope="col">Image</th><th scope="col">State</th><th scope="col">Progress</th><th scope="col">Started</th><th scope="col"><span class="sr-only">Open</span></th></tr></thead>
          <tbody>
            {list.length === 0 && <tr><td colSpan={6} class="muted">No release yet.</td></tr>}
            {list.map((r) => (
              <tr key={r.id}>
                <td>{r.service}</td><td>{r.image}</td><td><span class={`pill state-${r.state}`}>{r.state}</span></td>
                <td>{r.updated}/{r.total}</td><td>{ago(r.createdAt)}</td>
                <td><button onClick={() => setOpen(r.service)} aria-label={`open the release of ${r.service}`}>Open</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
