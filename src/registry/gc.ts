/**
 * Garbage collection: mark and sweep.
 *
 * Mark: every manifest revision of every repository is a root; it marks its own bytes and what it
 * references (config, layers, index children, subject). Sweep: every blob not marked and not written
 * or used within the grace period is deleted, then repository links to deleted blobs are dropped.
 *
 * Online safety: uploads finishing during a GC produce fresh blobs (inside the grace period); pushes
 * and mounts touch the blobs they reference and, when the GC runs in the server's process, pin them
 * so the sweep skips them (and a push racing a deletion waits for it and then sees the blob gone).
 */
import type { Digest } from '../lib/digest.js';
import type { Logger } from '../lib/log.js';
import type { Registry } from './registry.js';
import { isSha256 } from './names.js';
import type { BlobStat, UploadState } from './storage/driver.js';

export interface GcOptions {
  /** Report what would be deleted without deleting. */
  dryRun?: boolean;
  /** Blobs written or touched more recently than this are kept (ms). */
  graceMs: number;
  /** Also remove upload sessions idle for longer than this (ms). */
  uploadMaxAgeMs?: number;
  log?: Logger;
  /** Told about each blob as it is (or would be) deleted. */
  onDelete?: (blob: BlobStat) => void;
}

export interface GcReport {
  dryRun: boolean;
  repositories: number;
  manifests: number;
  marked: number;
  blobs: number;
  /** Blobs deleted (or, in a dry run, that would be). */
  deleted: BlobStat[];
  bytesFreed: number;
  /** Unreferenced blobs kept because they are younger than the grace period. */
  young: number;
  /** Repository links to deleted blobs that were dropped. */
  linksRemoved: number;
  uploadsPurged: UploadState[];
  ms: number;
}

function referencesOf(bytes: Buffer): Digest[] {
  const m = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  const out: Digest[] = [];
  const add = (d: unknown) => {
    const digest = (d as { digest?: unknown } | undefined)?.digest;
    if (typeof digest === 'string' && isSha256(digest)) out.push(digest);
  };
  add(m.config);
  if (Array.isArray(m.layers)) m.layers.forEach(add);
  if (Array.isArray(m.manifests)) m.manifests.forEach(add);
  add(m.subject);
  return out;
}

export async function collectGarbage(registry: Registry, opts: GcOptions): Promise<GcReport> {
  return registry.withPins(async (pins) => {
    const t0 = Date.now();
    const storage = registry.storage;
    const dryRun = opts.dryRun ?? false;
    const marked = new Set<string>();
    const report: GcReport = { dryRun, repositories: 0, manifests: 0, marked: 0, blobs: 0, deleted: [], bytesFreed: 0, young: 0, linksRemoved: 0, uploadsPurged: [], ms: 0 };

    // ---- mark
    const repos = await storage.listRepositories();
    report.repositories = repos.length;
    for (const repo of repos) {
      for await (const d of storage.listManifests(repo)) {
        report.manifests++;
        marked.add(d);
        let bytes: Buffer;
        try {
          bytes = await storage.readBlobBytes(d);
        } catch {
          opts.log?.warn({ repo, digest: d }, 'gc: manifest revision without its bytes');
          continue;
        }
        let refs: Digest[];
        try {
          refs = referencesOf(bytes);
        } catch (err) {
          // what it references is unknown, so nothing may be swept safely
          throw new Error(`gc: manifest ${repo}@${d} is not valid JSON (${(err as Error).message}); refusing to sweep`);
        }
        for (const r of refs) marked.add(r);
      }
    }
    report.marked = marked.size;

    // ---- sweep
    const cutoff = Date.now() - opts.graceMs;
    for await (const b of storage.listBlobs()) {
      report.blobs++;
      if (marked.has(b.digest) || pins.has(b.digest)) continue;
      if (b.modifiedMs > cutoff) {
        report.young++;
        continue;
      }
      if (!dryRun && !(await registry.sweepBlob(b.digest))) continue;
      report.deleted.push(b);
      report.bytesFreed += b.size;
      opts.onDelete?.(b);
    }

    // ---- links to what is gone
    if (!dryRun && report.deleted.length) {
      const gone = new Set(report.deleted.map((b) => b.digest));
      for (const repo of repos) {
        for await (const d of storage.listBlobLinks(repo)) {
          if (gone.has(d) && !(await storage.statBlob(d))) {
            await storage.unlinkBlob(repo, d);
            report.linksRemoved++;
          }
        }
      }
    }

    if (opts.uploadMaxAgeMs !== undefined) report.uploadsPurged = await registry.purgeUploads(opts.uploadMaxAgeMs, dryRun);
    report.ms = Date.now() - t0;
    opts.log?.info(
      { dryRun, repositories: report.repositories, manifests: report.manifests, marked: report.marked, blobs: report.blobs, deleted: report.deleted.length, bytesFreed: report.bytesFreed, young: report.young, linksRemoved: report.linksRemoved, uploadsPurged: report.uploadsPurged.length, ms: report.ms },
      'garbage collection done',
    );
    return report;
  });
}
