import { conflict, invalid } from '../../lib/errors.js';
import { hexOf, type Digest } from '../../lib/digest.js';
import { familiarRepo, parseReference } from '../../lib/reference.js';
import type { EventBus } from '../events.js';
import type { Image, ImageStore } from './store.js';

export interface ImageUser {
  id: string;
  running: boolean;
}

/** Docker's rules for listing, tagging and removing images. */
export class ImageService {
  constructor(
    readonly store: ImageStore,
    private readonly events: EventBus,
    private readonly usedBy: (imageId: Digest) => ImageUser[],
  ) {}

  list(filters: Map<string, string[]>): Image[] {
    let imgs = this.store.list();
    for (const [k, vals] of filters) {
      switch (k) {
        case 'dangling': {
          const want = vals.some((v) => v === 'true' || v === '1');
          imgs = imgs.filter((i) => (i.repoTags.length === 0) === want);
          break;
        }
        case 'label':
          imgs = imgs.filter((i) => vals.every((v) => labelMatch(i.config.config?.Labels ?? {}, v)));
          break;
        case 'reference':
          // as Docker: an image is listed with only the tags that match, not all of its tags
          imgs = imgs.map((i) => ({ ...i, repoTags: i.repoTags.filter((t) => vals.some((pat) => refMatch(t, pat))) })).filter((i) => i.repoTags.length > 0);
          break;
        case 'before':
        case 'since': {
          const ref = this.store.resolve(vals[0]!);
          const t = Date.parse(ref.created);
          imgs = imgs.filter((i) => (k === 'before' ? Date.parse(i.created) < t : Date.parse(i.created) > t));
          break;
        }
        case 'until': {
          const t = parseTime(vals[0]!);
          imgs = imgs.filter((i) => Date.parse(i.created) < t);
          break;
        }
        default:
          throw invalid(`invalid filter '${k}'`);
      }
    }
    return imgs.sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
  }

  async tag(source: string, repo: string, tag?: string): Promise<void> {
    const img = this.store.resolve(source);
    if (!repo) throw invalid('repository name must have at least one component');
    const ref = tag ? `${repo}:${tag}` : repo;
    const parsed = parseReference(ref);
    if (parsed.digest) throw invalid('refusing to create a tag with a digest reference');
    await this.store.tag(img.id, ref);
    this.events.emit('image', 'tag', img.id, { name: this.store.tagKey(ref) });
  }

  /** `docker rmi`: untag, and delete when nothing refers to the image any more. */
  async remove(ref: string, force: boolean): Promise<Array<{ Untagged?: string; Deleted?: string }>> {
    let img = this.store.resolve(ref);
    const out: Array<{ Untagged?: string; Deleted?: string }> = [];
    const users = this.usedBy(img.id);
    const running = users.find((u) => u.running);
    const byTag = this.store.hasTag(ref) && this.store.find(ref)?.id === img.id && !ref.startsWith('sha256:') && !/^[a-f0-9]{4,64}$/.test(ref);
    if (byTag && (img.repoTags.length > 1 || (img.repoTags.length === 1 && users.length > 0 && force))) {
      // another reference keeps the image, or -f on an image a container uses: untag first
      await this.store.untag(ref);
      out.push({ Untagged: this.store.tagKey(ref) });
      this.events.emit('image', 'untag', img.id, { name: this.store.tagKey(ref) });
      // as Docker: a running container or a child image keeps the (now untagged) image; stopped containers do not hold it against -f
      if (img.repoTags.length > 1 || running || this.store.children(img.id).length) return out;
      img = this.store.byId(img.id)!;
    }
    if (users.length) {
      const u = running ?? users[0]!;
      if (byTag && !force) throw conflict(`conflict: unable to remove repository reference "${ref}" (must force) - container ${u.id.slice(0, 12)} is using its referenced image ${hexOf(img.id).slice(0, 12)}`);
      if (running || !force) throw conflict(`conflict: unable to delete ${hexOf(img.id).slice(0, 12)} (${u.running ? 'cannot be forced' : 'must be forced'}) - image is being used by ${u.running ? 'running ' : 'stopped '}container ${u.id.slice(0, 12)}`);
    }
    if (!byTag && img.repoTags.length > 1 && !force) {
      throw conflict(`conflict: unable to delete ${hexOf(img.id).slice(0, 12)} (must be forced) - image is referenced in multiple repositories`);
    }
    if (!force && this.store.children(img.id).length && img.repoTags.length <= 1) {
      // Docker refuses to delete an image that has dependent child images
      throw conflict(`conflict: unable to delete ${hexOf(img.id).slice(0, 12)} (cannot be forced) - image has dependent child images`);
    }
    for (const t of img.repoTags) {
      await this.store.untag(t);
      out.push({ Untagged: t });
      this.events.emit('image', 'untag', img.id, { name: t });
    }
    for (const d of img.repoDigests) out.push({ Untagged: d });
    await this.store.remove(img.id);
    out.push({ Deleted: img.id });
    this.events.emit('image', 'delete', img.id, { name: img.id });
    return out;
  }

  /** Dangling images not used by any container; all unused ones with dangling=false. */
  async prune(filters: Map<string, string[]>): Promise<{ ImagesDeleted: Array<{ Untagged?: string; Deleted?: string }>; SpaceReclaimed: number }> {
    const danglingOnly = !(filters.get('dangling') ?? ['true']).some((v) => v === 'false' || v === '0');
    const deleted: Array<{ Untagged?: string; Deleted?: string }> = [];
    let space = 0;
    for (const img of this.store.list()) {
      if (danglingOnly && img.repoTags.length) continue;
      if (this.usedBy(img.id).length) continue;
      if ((filters.get('label') ?? []).some((v) => !labelMatch(img.config.config?.Labels ?? {}, v))) continue;
      const until = filters.get('until')?.[0];
      if (until && Date.parse(img.created) >= parseTime(until)) continue;
      if (this.store.children(img.id).length) continue;
      try {
        deleted.push(...(await this.remove(img.id, true)));
        space += img.size;
      } catch (err) {
        if (!(err instanceof Error)) throw err;
      }
    }
    this.events.emit('image', 'prune', '', { reclaimed: String(space) });
    return { ImagesDeleted: deleted, SpaceReclaimed: space };
  }

  get(ref: string): Image {
    return this.store.resolve(ref);
  }

  has(ref: string): boolean {
    return !!this.store.find(ref);
  }
}

export function labelMatch(labels: Record<string, string>, filter: string): boolean {
  const i = filter.indexOf('=');
  if (i < 0) return filter in labels;
  return labels[filter.slice(0, i)] === filter.slice(i + 1);
}

/** Docker's reference filter: a glob over "repo:tag" (or over repo alone when the pattern has no tag). */
export function refMatch(repoTag: string, pattern: string): boolean {
  const glob = (p: string) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
  const colon = repoTag.lastIndexOf(':');
  const repo = repoTag.slice(0, colon);
  if (pattern.includes(':') && !/^[^/]*:\d+\//.test(pattern.split('/').slice(-1)[0] ?? '')) return glob(pattern).test(repoTag);
  return glob(pattern).test(repo) || glob(pattern).test(familiarRepo(parseReferenceSafe(repo)));
}

function parseReferenceSafe(s: string) {
  try {
    return parseReference(s);
  } catch {
    return { domain: 'docker.io', path: s };
  }
}

/** Docker's time filter values: unix seconds, RFC 3339, or a duration like "24h" before now. */
export function parseTime(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const dur = /^(\d+)(s|m|h)$/.exec(v);
  if (dur) return Date.now() - Number(dur[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[dur[2] as 's' | 'm' | 'h'];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalid(`invalid time: ${v}`);
  return t;
}

