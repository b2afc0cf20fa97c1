import { useMemo, useState } from 'preact/hooks';
import { live, useLive, type NodeView } from '../live.js';
import { byName, bytes } from '../format.js';
import { VirtualTable, type Column } from '../virtual-table.js';

const health = (n: NodeView): string => (n.state === 'down' ? 'down' : n.degraded ? `degraded (${Object.keys(n.degraded).join(', ')})` : n.availability === 'drain' ? 'drained' : 'ready');

const columns: Column<NodeView>[] = [
  { title: 'Name', width: '14%', cell: (n) => <span class="host-name">{n.name}</span> },
  { title: 'Health', width: '14%', cell: (n) => <span class={`pill ${n.state === 'down' ? 'bad' : n.degraded ? 'warn' : 'ok'}`}>{health(n)}</span> },
  { title: 'Address', width: '12%', cell: (n) => n.addr },
  { title: 'Containers', width: '9%', cell: (n) => n.containers },
  { title: 'Images', width: '7%', cell: (n) => n.images },
  { title: 'CPU', width: '6%', cell: (n) => n.capacity.ncpu },
  { title: 'Memory', width: '9%', cell: (n) => bytes(n.capacity.memTotal) },
  { title: 'Labels', width: '29%', cell: (n) => Object.entries(n.labels).map(([k, v]) => <span class="tag" key={k}>{k}={v}</span>) },
];

/** Every word of the query is in the host's name, address, health or a label. */
function matches(n: NodeView, words: string[]): boolean {
  if (!words.length) return true;
  const hay = `${n.name} ${n.addr} ${health(n)} ${Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(' ')}`.toLowerCase();
  return words.every((w) => hay.includes(w));
}

export function Hosts() {
  const v = useLive();
  const [q, setQ] = useState('');
  const rows = useMemo(() => {
    const words = q.toLowerCase().split(/\s+/).filter(Boolean);
    return [...live.nodes.values()].filter((n) => matches(n, words)).sort((a, b) => byName(a.name, b.name));
  }, [v, q]);
  return (
    <section aria-labelledby="h-hosts">
      <h1 id="h-hosts">Hosts</h1>
      <div class="toolbar">
        <label>Search hosts <input type="search" value={q} placeholder="name, address, label k=v, down…" onInput={(e) => setQ((e.target as HTMLInputElement).value)} /></label>
        <span class="muted" aria-live="polite">{rows.length.toLocaleString()} of {live.nodes.size.toLocaleString()}</span>
      </div>
      <VirtualTable label="hosts" rows={rows} columns={columns} rowKey={(n) => n.id} />
    </section>
  );
}
