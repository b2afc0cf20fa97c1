import { live, useLive, type NodeView } from '../live.js';
import { byName, bytes, pct } from '../format.js';
import { useMemo } from 'preact/hooks';

function Meter(p: { label: string; used: number; total: number; fmt(n: number): string }) {
  const v = pct(p.used, p.total);
  return (
    <div class="meter">
      <div class="meter-label"><span>{p.label}</span><span>{p.fmt(p.used)} / {p.fmt(p.total)} ({v}%)</span></div>
      <div class="bar" role="progressbar" aria-label={p.label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={v}><div style={{ width: `${v}%` }} /></div>
    </div>
  );
}

/** The hosts at a glance: those that need a look (down, degraded) first, then by name; a big cluster shows its first few. */
const GLANCE = 120;
const rank = (n: NodeView) => (n.state === 'down' ? 0 : n.degraded ? 1 : n.availability === 'drain' ? 2 : 3);
function Glance(p: { version: number }) {
  const all = useMemo(() => [...live.nodes.values()].sort((a, b) => rank(a) - rank(b) || byName(a.name, b.name)), [p.version]);
  return (
    <>
      <ul class="glance" aria-label="hosts at a glance">
        {all.slice(0, GLANCE).map((n) => {
          const st = n.state === 'down' ? 'down' : n.degraded ? 'degraded' : n.availability === 'drain' ? 'drained' : 'up';
          return <li key={n.id} class={`tile ${st}`} title={`${n.name}: ${st}, ${n.containers} containers`}><span class="host-name">{n.name}</span> <span class="sr-only">{st}</span><small>{n.containers}</small></li>;
        })}
      </ul>
      {all.length > GLANCE && <p class="muted">and {(all.length - GLANCE).toLocaleString()} more: see <a href="#/hosts">Hosts</a>.</p>}
    </>
  );
}

export function Overview() {
  const version = useLive();
  const s = live.summary;
  if (!s) return <p class="muted">Connecting to the manager…</p>;
  const card = (label: string, value: number, cls = '', id = '') => (
    <div class={`card ${cls}`} data-count={id}><div class="num">{value.toLocaleString()}</div><div class="label">{label}</div></div>
  );
  return (
    <section aria-labelledby="h-overview">
      <h1 id="h-overview">Overview</h1>
      <h2>Hosts</h2>
      <div class="cards">
        {card('hosts', s.nodes.total, '', 'hosts')}
        {card('up', s.nodes.up, 'ok', 'up')}
        {card('down', s.nodes.down, s.nodes.down ? 'bad' : '', 'down')}
        {card('degraded', s.nodes.degraded, s.nodes.degraded ? 'warn' : '', 'degraded')}
        {card('drained', s.nodes.drain, '', 'drain')}
      </div>
      <Glance version={version} />
      <h2>Workloads</h2>
      <div class="cards">
        {card('containers', s.containers.total, '', 'containers')}
        {card('running', s.containers.running, 'ok', 'running')}
        {card('services', s.services, '', 'services')}
      </div>
      <h2>Capacity of the hosts that are up</h2>
      <Meter label="CPU reserved" used={s.reserved.ncpu} total={s.capacity.ncpu} fmt={(n) => `${n.toFixed(1)} CPU`} />
      <Meter label="Memory reserved" used={s.reserved.memory} total={s.capacity.memTotal} fmt={bytes} />
    </section>
  );
}
