/**
 * `docker config`: objects stored in etcd, their data (base64, as the API carries it) written into tasks at their
 * target. swarmkit's rules: a name of at most 64 [a-zA-Z0-9-_.] starting and ending alphanumeric, data of 1 byte
 * to 1000 KiB, only the labels of one may change, one in use by a service may not be removed.
 */
import { conflict, invalid } from '../../lib/errors.js';
import type { ConfigSpec } from '../../lib/swarm-types.js';
import { lookup, swarmId, type ConfigRecord, type SwarmRecords } from './records.js';

/** swarmkit's MaxConfigSize. */
export const MAX_CONFIG_SIZE = 1000 * 1024;
const CONFIG_NAME = /^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$/;

export function validateConfigSpec(body: unknown): ConfigSpec {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('invalid config spec: the body must be a JSON object');
  const spec = body as ConfigSpec;
  if (typeof spec.Name !== 'string' || spec.Name.length > 64 || !CONFIG_NAME.test(spec.Name)) {
    throw invalid('rpc error: code = InvalidArgument desc = invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]');
  }
  const data = typeof spec.Data === 'string' ? Buffer.from(spec.Data, 'base64') : Buffer.alloc(0);
  if (data.length === 0 || data.length > MAX_CONFIG_SIZE) throw invalid(`rpc error: code = InvalidArgument desc = config data must be larger than 0 and less than ${MAX_CONFIG_SIZE} bytes`);
  return { Name: spec.Name, Labels: spec.Labels ?? {}, Data: data.toString('base64'), ...(spec.Templating !== undefined && { Templating: spec.Templating }) };
}

export class Configs {
  /** Told each version of a config as it is written (the watch stream), and undefined when it is removed. */
  private readonly watchers = new Map<string, Set<(c: ConfigRecord | undefined) => void>>();

  constructor(private readonly recs: SwarmRecords) {}

  get(ref: string): ConfigRecord {
    return lookup(this.recs.configs, ref, (c) => c.spec.Name, 'config');
  }

  async create(body: unknown): Promise<{ ID: string }> {
    const spec = validateConfigSpec(body);
    if ([...this.recs.configs.values()].some((c) => c.spec.Name === spec.Name)) throw conflict(`rpc error: code = AlreadyExists desc = config ${spec.Name} already exists`);
    const now = new Date().toISOString();
    const rec: ConfigRecord = { id: swarmId(), version: this.recs.next(), createdAt: now, updatedAt: now, spec };
    await this.recs.put([{ kind: 'configs', rec }]);
    this.tell(rec.spec.Name, rec);
    return { ID: rec.id };
  }

  async update(ref: string, version: number, body: unknown): Promise<void> {
    const cur = this.get(ref);
    if (version !== cur.version) throw conflict('rpc error: code = Unknown desc = update out of sequence');
    const spec = (body ?? {}) as ConfigSpec;
    if (spec.Name !== undefined && spec.Name !== cur.spec.Name) throw invalid('rpc error: code = InvalidArgument desc = only updates to Labels are allowed');
    if (spec.Data !== undefined && spec.Data !== cur.spec.Data) throw invalid('rpc error: code = InvalidArgument desc = only updates to Labels are allowed');
    const rec: ConfigRecord = { ...cur, version: this.recs.next(), updatedAt: new Date().toISOString(), spec: { ...cur.spec, Labels: spec.Labels ?? {} } };
    await this.recs.put([{ kind: 'configs', rec }]);
    this.tell(rec.spec.Name, rec);
  }

  async remove(ref: string): Promise<void> {
    const c = this.get(ref);
    const users = [...this.recs.services.values()].filter((s) => (s.spec.TaskTemplate.ContainerSpec.Configs ?? []).some((r) => r.ConfigID === c.id || r.ConfigName === c.spec.Name)).map((s) => s.spec.Name);
    if (users.length) throw conflict(`rpc error: code = InvalidArgument desc = config '${c.spec.Name}' is in use by the following service${users.length > 1 ? 's' : ''}: ${users.join(', ')}`);
    await this.recs.put([], [{ kind: 'configs', id: c.id }]);
    this.tell(c.spec.Name, undefined);
  }

  /** Follows a config by name: `fn` now with the current version, then with each new one; returns the unsubscribe. */
  watch(name: string, fn: (c: ConfigRecord | undefined) => void): () => void {
    let set = this.watchers.get(name);
    if (!set) this.watchers.set(name, (set = new Set()));
    set.add(fn);
    fn([...this.recs.configs.values()].find((c) => c.spec.Name === name));
    return () => {
      set.delete(fn);
      if (!set.size) this.watchers.delete(name);
    };
  }

  private tell(name: string, c: ConfigRecord | undefined): void {
    for (const fn of this.watchers.get(name) ?? []) fn(c);
  }
}
