import { useEffect, useRef, useState } from 'preact/hooks';
import { json, request } from '../api.js';
import { live, useLive } from '../live.js';
import { ago } from '../format.js';

interface Row {
  id: string;
  name: string;
  node: string;
  image: string;
  state: string;
  status: string;
  created: number;
  labels: Record<string, string>;
}

/** Docker's log stream: 8-byte frame headers unless the container has a TTY. */
function demux(buf: Uint8Array<ArrayBuffer>): { text: string; rest: Uint8Array<ArrayBuffer> } {
  const dec = new TextDecoder();
  let text = '';
  let at = 0;
  const framed = buf.length >= 8 && buf[0]! <= 2 && buf[1] === 0 && buf[2] === 0 && buf[3] === 0;
  if (!framed) return { text: dec.decode(buf), rest: new Uint8Array() };
  while (buf.length - at >= 8) {
    const n = new DataView(buf.buffer, buf.byteOffset + at + 4, 4).getUint32(0);
    if (buf.length - at - 8 < n) break;
    text += dec.decode(buf.subarray(at + 8, at + 8 + n));
    at += 8 + n;
  }
  return { text, rest: buf.slice(at) };
}

/** The last lines of a container's log, then the new ones as they come (Docker's logs?follow=1). */
function Logs(p: { row: Row; onClose(): void }) {
  const [text, setText] = useState('');
  const [err, setErr] = useState('');
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const ac = new AbortController();
    setText('');
    void (async () => {
      try {
        const res = await request('GET', `/containers/${p.row.id}/logs?stdout=1&stderr=1&follow=1&tail=200&timestamps=0`, undefined, ac.signal);
        const reader = res.body!.getReader();
        let rest: Uint8Array<ArrayBuffer> = new Uint8Array();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const all = new Uint8Array(rest.length + value.length);
          all.set(rest);
          all.set(value, rest.length);
          const d = demux(all);
          rest = d.rest;
          // the newest 2,000 lines stay: a chatty container must not grow the page without end
          if (d.text) setText((t) => (t + d.text).split('\n').slice(-2000).join('\n'));
        }
      } catch (e) {
        if (!ac.signal.aborted) setErr(String((e as Error).message));
      }
    })();
    return () => ac.abort();
  }, [p.row.id]);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text]);
  return (
    <div class="logs" role="region" aria-label={`logs of ${p.row.name}`}>
      <div class="toolbar"><strong>Logs of {p.row.name}</strong> <span class="muted">on {p.row.node}, following</span> <button onClick={p.onClose}>Close</button></div>
      {err ? <p class="error" role="alert">{err}</p> : <pre ref={pre} tabIndex={0}>{text || '(no output yet)'}</pre>}
    </div>
  );
}

export function Containers() {
  useLive();
  const total = live.summary?.containers.total;
  const [q, setQ] = useState('');
  const [node, setNode] = useState('');
  const [label, setLabel] = useState('');
  const [res, setRes] = useState<{ total: number; items: Row[] }>();
  const [err, setErr] = useState('');
  const [open, setOpen] = useState<Row>();
  // searched again when the criteria change (debounced) or the cluster's count of containers does
  useEffect(() => {
    const t = setTimeout(() => {
      const qs = new URLSearchParams({ limit: '500' });
      if (q) qs.set('q', q);
      if (node) qs.set('node', node);
      if (label) qs.set('label', label);
      json<{ total: number; items: Row[] }>(`/sampan/v1/containers?${qs}`).then((r) => { setRes(r); setErr(''); }, (e: Error) => setErr(e.message));
    }, 250);
    return () => clearTimeout(t);
  }, [q, node, label, total]);
  return (
    <section aria-labelledby="h-containers">
      <h1 id="h-containers">Containers</h1>
      <form class="toolbar" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>Name, id or image <input type="search" name="q" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} /></label>
        <label>Host <input type="search" name="node" value={node} size={10} onInput={(e) => setNode((e.target as HTMLInputElement).value)} /></label>
        <label>Label <input type="search" name="label" value={label} size={14} placeholder="k or k=v" onInput={(e) => setLabel((e.target as HTMLInputElement).value)} /></label>
        <span class="muted" aria-live="polite">{res ? `${res.total.toLocaleString()} found${res.total > res.items.length ? `, first ${res.items.length} shown` : ''}` : ''}</span>
      </form>
      {err && <p class="error" role="alert">{err}</p>}
      {open && <Logs row={open} onClose={() => setOpen(undefined)} />}
      <table class="table">
        <thead><tr><th scope="col">Name</th><th scope="col">Host</th><th scope="col">Image</th><th scope="col">Status</th><th scope="col">Id</th><th scope="col">Created</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>
          {res?.items.map((c) => (
            <tr key={c.id} data-container={c.name}>
              <td>{c.name}</td><td>{c.node}</td><td>{c.image}</td>
              <td><span class={`pill ${c.state === 'running' ? 'ok' : c.status === 'Host Down' ? 'bad' : ''}`}>{c.status}</span></td>
              <td><code>{c.id.slice(0, 12)}</code></td><td>{ago(c.created)}</td>
              <td><button onClick={() => setOpen(c)} aria-label={`logs of ${c.name}`}>Logs</button></td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
