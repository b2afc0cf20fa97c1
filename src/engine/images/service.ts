import { conflict, invalid } from '../../lib/errors.js';
import { hexOf, type Digest } from '../../lib/digest.js';
import { familiarRepo, parseReference } from '../../lib/reference.js';
import type { EventBus } from '../events.js';
import type { Image, ImageStore } from './store.js';

export type DeleteItem = { Untagged?: string; Deleted?: string };

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

  /** `all` false (`docker images` without -a): untagged images that are another's parent (intermediates) are hidden. */
  list(filters: Map<string, string[]>, all = true): Image[] {
    let imgs = this.store.list();
    if (!all) {
      const parents = new Set(imgs.map((i) => i.parent));
      imgs = imgs.filter((i) => i.repoTags.length > 0 || !parents.has(i.id));
    }
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

  /**
   * `docker rmi`, by Docker's rules (image_delete.go): a tag is removed first; the image goes when nothing keeps it
   * (other tags, containers, child images); with `prune` its untagged parents nothing else keeps go too.
   */
  async remove(ref: string, force: boolean, prune = true): Promise<DeleteItem[]> {
    const img = this.store.resolve(ref);
    const out: DeleteItem[] = [];
    const byTag = this.store.hasTag(ref) && this.store.find(ref)?.id === img.id && !ref.startsWith('sha256:') && !/^[a-f0-9]{4,64}$/.test(ref);
    if (byTag) {
      const users = this.usedBy(img.id);
      if (!force && img.repoTags.length === 1 && users.length) {
        const u = users.find((x) => x.running) ?? users[0]!;
        // untagging would leave a dangling image behind the container: the user must ask for it
        throw conflict(`conflict: unable to remove repository reference "${ref}" (must force) - container ${u.id.slice(0, 12)} is using its referenced image ${hexOf(img.id).slice(0, 12)}`);
      }
      const key = this.store.tagKey(ref);
      await this.store.untag(ref);
      out.push({ Untagged: key });
      this.events.emit('image', 'untag', img.id, { name: key });
      if (img.repoTags.length > 1) return out;
      // the last tag is gone: delete unless something keeps the image, quietly (the untag was what was asked)
      await this.deleteChain(img.id, out, force, prune, true);
      return out;
    }
    if (img.repoTags.length === 1) {
      const c = this.conflictOf(img.id, { hard: true, soft: !force, activeRef: false });
      if (c) throw c.error;
      await this.untagAll(img, out);
    }
    await this.deleteChain(img.id, out, force, prune, false);
    return out;
  }

  /** Docker's image delete helper: conflicts, then the image, then (prune) its parent the same way, quietly. */
  private async deleteChain(id: Digest, out: DeleteItem[], force: boolean, prune: boolean, quiet: boolean): Promise<void> {
    const c = this.conflictOf(id, { hard: true, soft: !force, activeRef: !force });
    if (c) {
      // a quiet delete stops at an image something still keeps; only a dangling, unused one is reported
      if (quiet && (!this.dangling(id) || c.used)) return;
      throw c.error;
    }
    const img = this.store.byId(id);
    if (!img) return;
    await this.untagAll(img, out);
    for (const d of img.repoDigests) out.push({ Untagged: d });
    await this.store.remove(img.id);
    out.push({ Deleted: img.id });
    this.events.emit('image', 'delete', img.id, { name: img.id });
    if (prune && img.parent && this.store.byId(img.parent)) await this.deleteChain(img.parent, out, false, true, true);
  }

  private async untagAll(img: Image, out: DeleteItem[]): Promise<void> {
    for (const t of img.repoTags) {
      await this.store.untag(t);
      out.push({ Untagged: t });
      this.events.emit('image', 'untag', img.id, { name: t });
    }
  }

  /** No tags and no child images. */
  private dangling(id: Digest): boolean {
    return (this.store.byId(id)?.repoTags.length ?? 0) === 0 && this.store.children(id).length === 0;
  }

  /** Docker's delete conflicts, in its order: hard ones (child images, running containers) cannot be forced. */
  private conflictOf(id: Digest, mask: { hard: boolean; soft: boolean; activeRef: boolean }): { error: Error; used: boolean } | undefined {
    const mk = (hard: boolean, why: string, used: boolean) => ({
      used,
      error: conflict(`conflict: unable to delete ${hexOf(id).slice(0, 12)} (${hard ? 'cannot be forced' : 'must be forced'}) - ${why}`),
    });
    if (mask.hard && this.store.children(id).length) return mk(true, 'image has dependent child images', false);
    const users = this.usedBy(id);
    const running = users.find((u) => u.running);
    if (mask.hard && running) return mk(true, `image is being used by running container ${running.id.slice(0, 12)}`, true);
    if (mask.activeRef && (this.store.byId(id)?.repoTags.length ?? 0) > 0) return mk(false, 'image is referenced in multiple repositories', false);
    const stopped = users.find((u) => !u.running);
    if (mask.soft && stopped) return mk(false, `image is being used by stopped container ${stopped.id.slice(0, 12)}`, true);
    return undefined;
  }

  /**
   * Dangling images not used by any container; all unused ones with dangling=false. As Docker, only images
   * without children are candidates: their untagged parents go with them (rmi's parent pruning).
   */
  async prune(filters: Map<string, string[]>): Promise<{ ImagesDeleted: DeleteItem[]; SpaceReclaimed: number }> {
    const danglingOnly = !(filters.get('dangling') ?? ['true']).some((v) => v === 'false' || v === '0');
    const until = filters.get('until')?.[0];
    const untilMs = until ? parseTime(until) : undefined;
    const sizes = new Map(this.store.list().map((i) => [i.id, i.size]));
    const deleted: DeleteItem[] = [];
    const tried = new Set<Digest>();
    // passes until nothing changes: with -a, a tagged parent becomes a candidate once its children are gone
    for (let progress = true; progress; ) {
      progress = false;
      for (const img of this.store.list()) {
        if (tried.has(img.id)) continue;
        if (danglingOnly && img.repoTags.length) continue;
        if (this.store.children(img.id).length) continue;
        if (this.usedBy(img.id).length) continue;
        if ((filters.get('label') ?? []).some((v) => !labelMatch(img.config.config?.Labels ?? {}, v))) continue;
        if (untilMs !== undefined && Date.parse(img.created) >= untilMs) continue;
        tried.add(img.id);
        try {
          deleted.push(...(await this.remove(img.id, true)));
          progress = true;
        } catch (err) {
          if (!(err instanceof Error)) throw err;
        }
      }
    }
    let space = 0;
    for (const d of deleted) if (d.Deleted) space += sizes.get(d.Deleted as Digest) ?? 0;
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

