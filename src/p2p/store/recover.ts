import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { exists, readJson } from '../../lib/fsutil.js';
import type { Logger } from '../../lib/log.js';
import { pieceCount, type TaskId } from '../protocol.js';
import { PieceSet } from './bitmap.js';
import { DataFile } from './datafile.js';
import { parseRecord, pieceLength } from './meta.js';
import { COMPLETE_FILE, DATA_FILE, META_FILE, StoredTask } from './task.js';

/**
 * Loads a task directory after a restart. A `complete` task is trusted as is (its marker is written only after the
 * whole-blob digest matched and the data was synced). A partial task is re-verified now, eagerly: every piece
 * whose digest is known (from the meta, or computed here when it was written) is read back and hashed, and only
 * matching pieces count as held. That drops pieces torn by a crash and also recovers pieces written after the
 * last meta.json batch. Undefined (with the reason) when the directory holds nothing verifiable.
 */
export async function loadTask(
  dir: string,
  id: TaskId,
  log: Logger,
): Promise<{ task: StoredTask; recovered?: { before: number; after: number } } | { reason: string }> {
  // temp files of an atomic write cut short by a crash
  for (const name of await fs.readdir(dir)) {
    if (name.startsWith('.tmp-')) await fs.rm(path.join(dir, name), { force: true });
  }
  let raw: unknown;
  try {
    raw = await readJson(path.join(dir, META_FILE));
  } catch {
    return { reason: 'meta.json missing or unreadable' };
  }
  const rec = parseRecord(id, raw);
  if (!rec) return { reason: 'meta.json invalid' };
  const { meta } = rec;
  const total = pieceCount(meta.size, meta.pieceSize);
  const dataPath = path.join(dir, DATA_FILE);
  let size: number;
  try {
    size = (await fs.stat(dataPath)).size;
  } catch {
    return { reason: 'data file missing' };
  }
  const data = new DataFile(dataPath);
  const markerPath = path.join(dir, COMPLETE_FILE);
  if (await exists(markerPath)) {
    if (size === meta.size && meta.pieceDigests.length === total) {
      const held = new PieceSet(total);
      for (let i = 0; i < total; i++) held.add(i);
      return { task: new StoredTask({ id, dir, meta, data, log, held, complete: true, lastUsed: rec.lastUsed }) };
    }
    // a marker that does not fit its meta: trust nothing but what the pieces prove
    log.warn({ task: id }, 'p2p store: complete marker inconsistent, re-verifying pieces');
    await fs.rm(markerPath, { force: true });
  }
  if (size !== meta.size) await fs.truncate(dataPath, meta.size);

  const recorded = PieceSet.fromBase64(total, rec.held);
  const held = new PieceSet(total);
  const own = new Map<number, string>();
  if (total > 0) {
    await data.use(async (fh) => {
      const buf = Buffer.allocUnsafe(meta.pieceSize);
      for (let n = 0; n < total; n++) {
        const fromOwn = meta.pieceDigests[n] === undefined;
        const expect = fromOwn ? (recorded.has(n) ? rec.own[n] : undefined) : meta.pieceDigests[n];
        if (expect === undefined) continue;
        const len = pieceLength(meta, n);
        const { bytesRead } = await fh.read(buf, 0, len, n * meta.pieceSize);
        if (bytesRead !== len) continue;
        if (createHash('sha256').update(buf.subarray(0, len)).digest('hex') !== expect) continue;
        held.add(n);
        if (fromOwn) own.set(n, expect);
      }
    });
  }
  const task = new StoredTask({ id, dir, meta, data, log, held, own, lastUsed: rec.lastUsed, dirty: true });
  return { task, recovered: { before: recorded.count(), after: held.count() } };
}
