/**
 * P2P traffic: per image, the bytes hosts got from other peers and from the registry over time, plotted with
 * uPlot. The series come from /sampan/v1/p2p/traffic, then from the live stream's `p2p` topic as they grow.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { HttpError, json } from '../api.js';
import { live, useLive } from '../live.js';
import { bytes } from '../format.js';

export interface Traffic {
  /** Where the figures come from (the P2P scheduler's address), or why there are none. */
  source?: string;
  images: Array<{ image: string; samples: Array<{ t: number; fromPeers: number; fromRegistry: number }> }>;
}

function Plot(p: { image: string; samples: Traffic['images'][number]['samples'] }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const data = (): uPlot.AlignedData => [p.samples.map((s) => s.t / 1000), p.samples.map((s) => s.fromPeers), p.samples.map((s) => s.fromRegistry)];
  useEffect(() => {
    plot.current = new uPlot({
      width: Math.min(1000, (el.current?.clientWidth ?? 800) - 8),
      height: 220,
      title: p.image,
      series: [{}, { label: 'from peers', stroke: '#2a9d8f', width: 2, value: (_u, v) => (v == null ? '' : bytes(v)) }, { label: 'from the registry', stroke: '#e76f51', width: 2, value: (_u, v) => (v == null ? '' : bytes(v)) }],
      axes: [{}, { values: (_u, vs) => vs.map((v) => bytes(v)), size: 70 }],
    }, data(), el.current!);
    return () => plot.current?.destroy();
  }, [p.image]);
  useEffect(() => plot.current?.setData(data()), [p.samples]);
  return <figure class="plot" aria-label={`P2P traffic of ${p.image}`}><div ref={el} /></figure>;
}

export function P2P() {
  useLive();
  const [first, setFirst] = useState<Traffic | 'absent'>();
  const [err, setErr] = useState('');
  useEffect(() => {
    json<Traffic>('/sampan/v1/p2p/traffic').then(setFirst, (e: Error) => (e instanceof HttpError && e.status === 404 ? setFirst('absent') : setErr(e.message)));
  }, []);
  const t = (live.values.get('p2p') as Traffic | undefined) ?? (first === 'absent' ? undefined : first);
  return (
    <section aria-labelledby="h-p2p">
      <h1 id="h-p2p">P2P traffic</h1>
      {err && <p class="error" role="alert">{err}</p>}
      {first === 'absent' && !t && <p class="muted">This manager reports no P2P traffic (/sampan/v1/p2p/traffic).</p>}
      {t?.source && <p class="muted">From {t.source}.</p>}
      {t && t.images.length === 0 && <p class="muted">No image has moved through the P2P network yet.</p>}
      {t && t.images.length > 0 && (
        <table class="table" aria-label="bytes by image, so far">
          <thead><tr><th scope="col">Image</th><th scope="col">From peers</th><th scope="col">From the registry</th><th scope="col">Share from peers</th></tr></thead>
          <tbody>{t.images.map((i) => {
            const last = i.samples[i.samples.length - 1] ?? { fromPeers: 0, fromRegistry: 0 };
            const all = last.fromPeers + last.fromRegistry;
            return (
              <tr key={i.image} data-image={i.image} data-from-peers={last.fromPeers} data-from-registry={last.fromRegistry}>
                <td>{i.image}</td><td>{bytes(last.fromPeers)}</td><td>{bytes(last.fromRegistry)}</td><td>{all ? `${Math.round((last.fromPeers / all) * 100)}%` : '—'}</td>
              </tr>
            );
          })}</tbody>
        </table>
      )}
      {t?.images.map((i) => {
        const last = i.samples[i.samples.length - 1];
        return (
          <div key={i.image}>
            <Plot image={i.image} samples={i.samples} />
            {last && <p class="muted">{bytes(last.fromPeers)} from peers, {bytes(last.fromRegistry)} from the registry so far.</p>}
          </div>
        );
      })}
    </section>
  );
}
