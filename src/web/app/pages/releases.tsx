/**
 * Services' releases, as the release routes (/sampan/v1/releases…) describe them: the history, and one release's
 * batches, instances and events. Each service's latest release comes live on the page's one stream (its
 * `releases` topic); the history is read once from the routes and merged with it. The buttons (Confirm, Pause,
 * Resume, Roll back) are an admin's only, and the server refuses them to a read-only token anyway (403).
 */
import { useEffect, useState } from 'preact/hooks';
import { HttpError, json, type Role } from '../api.js';
import { ago } from '../format.js';
import { live, useLive, type ReleaseView } from '../live.js';

export type Release = ReleaseView;

const SLOT_STATES = ['ready', 'in-flight', 'retry', 'pending', 'failed'];
/** An image reference without its pinned digest (the title keeps it whole). */
const short = (image: string) => image.replace(/@sha256:[0-9a-f]{64}$/, '');

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
  useLive();
  const [read, setRead] = useState<Release>();
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const streamed = live.releases.get(p.service);
  useEffect(() => {
    // a release the stream does not carry (an old one, from before this manager led): read once
    if (!streamed) json<Release>(`/sampan/v1/releases/${encodeURIComponent(p.service)}`).then(setRead, (e: Error) => setErr(e.message));
  }, [p.service]);
  const r = streamed ?? read;
  const act = async (a: string) => {
    setBusy(true);
    try {
      // the stream brings the record as the action left it
      await json<Release | undefined>(`/sampan/v1/releases/${encodeURIComponent(p.service)}/${a}`, 'POST');
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
    <div class="panel" aria-label={`release of ${r.service}`} data-release-state={r.state} data-release-id={r.id}>
      <h2>{r.service}: {r.previousImage ? <span title={r.previousImage}>{short(r.previousImage)} → </span> : ''}<span title={r.image}>{short(r.image)}</span></h2>
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
        {r.batches.map((b) => <li key={b.n} data-batch={b.n}>batch {b.n}: {Array.isArray(b.slots) ? b.slots.length : b.slots} slots {b.endedAt ? `done ${ago(b.endedAt)}` : b.startedAt ? 'running' : 'waiting'}</li>)}
      </ol>
      <h3>Instances</h3>
      <div class="instances" role="list">
        {r.instances.map((i) => <span role="listitem" key={i.slot} data-slot={i.slot} data-state={i.state} class={`inst ${i.state}`} title={`slot ${i.slot} on ${i.node}: ${i.state} (${i.image})`} aria-label={`slot ${i.slot} on ${i.node}: ${i.state}`}>{i.slot}</span>)}
      </div>
      <ul class="inst-legend" aria-label="instances by state">
        {SLOT_STATES.map((st) => <li key={st} data-count={st}><span class={`inst ${st}`} />{r.instances.filter((i) => i.state === st).length} {st}</li>)}
      </ul>
      <h3>Events</h3>
      <ul class="events">
        {[...r.events].reverse().slice(0, 50).map((e, k) => <li key={k}><time>{new Date(e.time).toLocaleTimeString()}</time> {e.type}: {e.message}{e.user && ` (${e.user})`}</li>)}
      </ul>
    </div>
  );
}

export function Releases(p: { role: Role }) {
  useLive();
  const [history, setHistory] = useState<Release[]>();
  const [err, setErr] = useState('');
  const [absent, setAbsent] = useState(false);
  const [open, setOpen] = useState<string>();
  const ids = [...live.releases.values()].map((r) => r.id).sort().join(',');
  useEffect(() => {
    // once, and again when the stream tells of a release the history read has not seen (one just started)
    if (history && [...live.releases.values()].every((r) => history.some((h) => h.id === r.id))) return;
    json<Release[]>('/sampan/v1/releases').then((l) => setHistory(l), (e: Error) => (e instanceof HttpError && e.status === 404 ? setAbsent(true) : setErr(e.message)));
  }, [ids]);
  const list = history && [...history.map((h) => (live.releases.get(h.service)?.id === h.id ? live.releases.get(h.service)! : h)),
    ...[...live.releases.values()].filter((r) => !history.some((h) => h.id === r.id))].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  // a service's newest release opens (the detail is its current one); older rows are its history
  const newest = new Set<string>();
  const seen = new Set<string>();
  for (const r of list ?? []) {
    if (seen.has(r.service)) continue;
    seen.add(r.service);
    newest.add(r.id);
  }
  return (
    <section aria-labelledby="h-releases">
      <h1 id="h-releases">Services &amp; releases</h1>
      {absent && <p class="muted">This manager has no release routes (/sampan/v1/releases): releases appear here once it does.</p>}
      {err && <p class="error" role="alert">{err}</p>}
      {open && <Detail key={open} service={open} role={p.role} />}
      {list && (
        <table class="table" aria-label="release history">
          <thead><tr><th scope="col">Service</th><th scope="col">Image</th><th scope="col">State</th><th scope="col">Progress</th><th scope="col">Started</th><th scope="col"><span class="sr-only">Open</span></th></tr></thead>
          <tbody>
            {list.length === 0 && <tr><td colSpan={6} class="muted">No release yet.</td></tr>}
            {list.map((r) => (
              <tr key={r.id} data-release={r.id}>
                <td>{r.service}</td><td>{r.image}</td><td><span class={`pill state-${r.state}`}>{r.state}</span></td>
                <td>{r.updated}/{r.total}</td><td>{ago(r.createdAt)}</td>
                <td>{newest.has(r.id) ? <button onClick={() => setOpen(r.service)} aria-label={`open the release of ${r.service}`}>Open</button> : null}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
