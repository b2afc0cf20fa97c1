/**
 * The dashboard's files (dist/web/, made by scripts/build-web.mjs), read once into memory: a few hundred KB,
 * each with its content type and a strong ETag. index.html is revalidated on every load (no-cache) so that a new
 * build is seen at once; the bundles carry their content hash in their names, so they are cached for a year.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
  cache: string;
}

const HASHED = /-[A-Z0-9]{8}\.(js|css)$/;

export class StaticFiles {
  private constructor(private readonly files: Map<string, StaticFile>) {}

  /** Every file under `dir` (none when the bundle was not built: then /ui/ answers 404 with a hint). */
  static async load(dir: string): Promise<StaticFiles> {
    const files = new Map<string, StaticFile>();
    const walk = async (rel: string): Promise<void> => {
      const entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const r = path.posix.join(rel, e.name);
        if (e.isDirectory()) await walk(r);
        else {
          const body = await fs.readFile(path.join(dir, r));
          files.set(`/${r}`, {
            body,
            type: TYPES[path.extname(e.name)] ?? 'application/octet-stream',
            etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
            cache: HASHED.test(e.name) ? 'public, max-age=31536000, immutable' : 'no-cache',
          });
        }
      }
    };
    await walk('');
    return new StaticFiles(files);
  }

  get size(): number {
    return this.files.size;
  }

  /** Answers `rel` (the path under /ui): a directory is its index.html; an unknown path is the app's (client-side routes). */
  serve(rel: string, req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'application/json' }).end(JSON.stringify({ message: `${req.method} is not allowed on /ui/` }));
      return;
    }
    const f = this.files.get(rel.endsWith('/') || rel === '' ? `${rel.replace(/\/$/, '')}/index.html` : rel) ?? (path.extname(rel) ? undefined : this.files.get('/index.html'));
    if (!f) {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ message: this.files.size ? `no such file: /ui${rel}` : 'the dashboard is not built: run `npm run build`' }));
      return;
    }
    const headers = { 'Content-Type': f.type, ETag: f.etag, 'Cache-Control': f.cache, 'X-Content-Type-Options': 'nosniff' };
    if (req.headers['if-none-match'] === f.etag) {
      res.writeHead(304, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Length': String(f.body.length) });
    res.end(req.method === 'HEAD' ? undefined : f.body);
  }
}
