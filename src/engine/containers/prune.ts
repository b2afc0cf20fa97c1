import { invalid } from '../../lib/errors.js';
import { labelMatch, parseTime } from '../images/service.js';
import type { ContainerService } from './service.js';

const LIVE = new Set(['running', 'paused', 'restarting', 'removing']);

/**
 * `docker container prune`: remove every container that is not running (created, exited, dead), narrowed by
 * Docker's filters `until`, `label` and `label!`. Reports the ids removed and the bytes their writable layers held.
 */
export async function pruneContainers(svc: ContainerService, filters: Map<string, string[]>): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
  for (const k of filters.keys()) if (!['until', 'label', 'label!'].includes(k)) throw invalid(`invalid filter '${k}'`);
  const until = filters.get('until')?.[0];
  const untilMs = until ? parseTime(until) : undefined;
  const want = filters.get('label') ?? [];
  const reject = filters.get('label!') ?? [];
  const deleted: string[] = [];
  let space = 0;
  for (const rec of svc.list()) {
    if (LIVE.has(rec.State.Status)) continue;
    if (!want.every((f) => labelMatch(rec.Config.Labels, f)) || reject.some((f) => labelMatch(rec.Config.Labels, f))) continue;
    if (untilMs !== undefined && Date.parse(rec.Created) >= untilMs) continue;
    const size = (await svc.sizes(rec)).SizeRw;
    try {
      await svc.remove(rec.Id);
    } catch {
      continue; // started or removed meanwhile: not ours to count
    }
    deleted.push(rec.Id);
    space += size;
  }
  svc.d.events.emit('container', 'prune', '', { reclaimed: String(space) });
  return { ContainersDeleted: deleted, SpaceReclaimed: space };
}
