import { useEffect, useState } from 'preact/hooks';
import { HttpError, json } from '../api.js';
import { bytes, ago } from '../format.js';

interface Image {
  Id: string;
  RepoTags: string[] | null;
  Size: number;
  Created: number;
  Containers?: number;
}

/** A registry or mirror as /sampan/v1/registries describes it: its hit rate and manifest cache. */
interface Registry {
  name: string;
  url: string;
  up: boolean;
  error?: string;
  hits?: number;
  misses?: number;
  manifestCache?: { entries: number; bytes: number; hits: number; misses: number };
}

export function Images() {
  const [images, setImages] = useState<Image[]>();
  const [regs, setRegs] = useState<Registry[] | 'absent'>();
  const [err, setErr] = useState('');
  useEffect(() => {
    json<Image[]>('/images/json').then(setImages, (e: Error) => setErr(e.message));
    json<Registry[]>('/sampan/v1/registries').then(setRegs, (e: Error) => (e instanceof HttpError && e.status === 404 ? setRegs('absent') : setErr(e.message)));
  }, []);
  const rate = (h = 0, m = 0) => (h + m ? `${Math.round((h / (h + m)) * 100)}% (${h}/${h + m})` : '—');
  return (
    <section aria-labelledby="h-images">
      <h1 id="h-images">Images &amp; registries</h1>
      {err && <p class="error" role="alert">{err}</p>}
      <h2>Registries and mirrors</h2>
      {regs === 'absent' && <p class="muted">This manager reports no registries (/sampan/v1/registries): mirror hit rates and manifest caches appear here once it does.</p>}
      {Array.isArray(regs) && (
        <table class="table">
          <thead><tr><th scope="col">Registry</th><th scope="col">State</th><th scope="col">Mirror hit rate</th><th scope="col">Manifest cache</th></tr></thead>
          <tbody>{regs.map((r) => (
            <tr key={r.url} data-registry={r.name}>
              <td>{r.name} <span class="muted">{r.url}</span></td>
              <td>{r.up ? <span class="pill ok">up</span> : <span class="pill bad" title={r.error}>unreachable</span>}</td>
              <td>{r.hits === undefined ? <span class="muted" title="a mirror (sampan registry --proxy-remote) counts its hits and misses; this registry is none">not a mirror</span> : rate(r.hits, r.misses)}</td>
              <td class="manifest-cache">{r.manifestCache ? `${r.manifestCache.entries} entries (${bytes(r.manifestCache.bytes)}), hits ${rate(r.manifestCache.hits, r.manifestCache.misses)}` : '—'}</td>
            </tr>
          ))}</tbody>
        </table>
      )}
      <h2>Images on the hosts</h2>
      <table class="table">
        <thead><tr><th scope="col">Tags</th><th scope="col">Id</th><th scope="col">Size</th><th scope="col">Created</th></tr></thead>
        <tbody>
          {images?.map((i) => <tr key={i.Id}><td>{(i.RepoTags ?? ['<none>']).join(', ')}</td><td><code>{i.Id.replace(/^sha256:/, '').slice(0, 12)}</code></td><td>{bytes(i.Size)}</td><td>{ago(i.Created)}</td></tr>)}
        </tbody>
      </table>
    </section>
  );
}
