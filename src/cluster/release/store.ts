/**
 * Where releases persist: the record under `releases/<service>/<id>`, each slot's progress under
 * `release-slots/<service>/<id>/<slot>` (so that a slot's progress is one small write, not the whole record), in the
 * cluster's etcd through the manager's fenced store: a manager that is no longer the leader cannot write them.
 */
import type { ClusterStore } from '../store.js';
import type { ReleaseHeader, SlotRecord } from './record.js';

/** What the controller needs of persistence. */
export interface ReleaseStore {
  /** The header and the given slots, written together (a refused or failed write throws). */
  put(h: ReleaseHeader, slots: SlotRecord[]): Promise<void>;
  /** Slots alone (the header follows later). */
  putSlots(service: string, id: string, slots: SlotRecord[]): Promise<void>;
  /** Headers, of one service or all. */
  list(service?: string): Promise<ReleaseHeader[]>;
  slots(service: string, id: string): Promise<SlotRecord[]>;
  /** Every release of the service, with its slots, in one write. */
  remove(service: string): Promise<void>;
}

export class EtcdReleaseStore implements ReleaseStore {
  constructor(private readonly store: ClusterStore) {}

  put(h: ReleaseHeader, slots: SlotRecord[]): Promise<void> {
    return this.store.write([
      ...slots.map((s) => ({ put: `release-slots/${h.service}/${h.id}/${s.slot}`, value: s })),
      { put: `releases/${h.service}/${h.id}`, value: h },
    ]);
  }

  putSlots(service: string, id: string, slots: SlotRecord[]): Promise<void> {
    return this.store.write(slots.map((s) => ({ put: `release-slots/${service}/${id}/${s.slot}`, value: s })));
  }

  async list(service?: string): Promise<ReleaseHeader[]> {
    const all = await this.store.readAll<ReleaseHeader>(service ? `releases/${service}/` : 'releases/');
    return [...all.values()];
  }

  async remove(service: string): Promise<void> {
    // a transaction of its own: etcd refuses one that puts a key inside a range it deletes, and write() shares its
    // transactions with other writers
    await this.store.writeIfAbsent([], [{ delPrefix: `releases/${service}/` }, { delPrefix: `release-slots/${service}/` }]);
  }

  async slots(service: string, id: string): Promise<SlotRecord[]> {
    const all = await this.store.readAll<SlotRecord>(`release-slots/${service}/${id}/`);
    return [...all.values()].sort((a, b) => a.slot - b.slot);
  }
}
