import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { atomicWriteJson, ensureDir, readJsonOr } from '../../lib/fsutil.js';

/** One plugin's configuration inside a conflist (type names the plugin binary). */
export type PluginConf = Record<string, unknown> & { type: string };

export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
}

export interface CniResult {
  cniVersion?: string;
  interfaces?: Array<{ name: string; mac?: string; sandbox?: string }>;
  ips?: Array<{ interface?: number; address: string; gateway?: string }>;
  routes?: unknown[];
  dns?: unknown;
}

export interface Attachment {
  containerId: string;
  netns: string;
  ifname: string;
  /** Per-plugin runtime config, given to the plugins whose capabilities ask for it (portMappings, ips). */
  runtimeConfig?: Record<string, unknown>;
  /** CNI_ARGS (K=V;K=V). */
  args?: string;
}

interface CacheEntry {
  kind: 'cniCacheV1';
  containerId: string;
  ifName: string;
  networkName: string;
  config: ConfList;
  runtimeConfig?: Record<string, unknown>;
  args?: string;
  netns: string;
  result: CniResult;
}

export class CniError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: string,
    message: string,
    readonly code?: number,
  ) {
    super(message);
  }
}

/**
 * Runs CNI plugins as the CNI spec says: environment carries the command and the container, the
 * configuration goes on stdin, a list is chained through prevResult. Each ADD result is cached on disk so that
 * DEL (and CHECK) get the same configuration and prevResult later, across engine restarts, as libcni does.
 */
export class Cni {
  constructor(
    readonly pluginDirs: string[],
    readonly cacheDir: string,
  ) {}

  async init(): Promise<void> {
    await ensureDir(this.cacheDir, 0o700);
  }

  private cacheFile(net: string, containerId: string, ifname: string): string {
    return path.join(this.cacheDir, `${net}-${containerId}-${ifname}.json`);
  }

  async cached(net: string, containerId: string, ifname: string): Promise<CacheEntry | undefined> {
    return readJsonOr<CacheEntry | undefined>(this.cacheFile(net, containerId, ifname), undefined);
  }

  async add(list: ConfList, a: Attachment): Promise<CniResult> {
    let prev: CniResult | undefined;
    const done: PluginConf[] = [];
    try {
      for (const p of list.plugins) {
        prev = await this.exec('ADD', this.pluginConf(list, p, a.runtimeConfig, prev), a);
        done.push(p);
      }
    } catch (err) {
      // undo what was set up, newest first, as libcni leaves it to the caller (DEL is idempotent)
      await this.delPlugins({ ...list, plugins: done }, a, prev).catch(() => undefined);
      throw err;
    }
    const result = prev ?? {};
    const entry: CacheEntry = { kind: 'cniCacheV1', containerId: a.containerId, ifName: a.ifname, networkName: list.name, config: list, runtimeConfig: a.runtimeConfig, args: a.args, netns: a.netns, result };
    await atomicWriteJson(this.cacheFile(list.name, a.containerId, a.ifname), entry);
    return result;
  }

  /** DEL with the cached configuration and result (the given list is used only when nothing was cached). */
  async del(netName: string, containerId: string, ifname: string, fallback?: { list: ConfList; netns: string }): Promise<void> {
    const entry = await this.cached(netName, containerId, ifname);
    const list = entry?.config ?? fallback?.list;
    if (!list) return;
    const a: Attachment = { containerId, ifname, netns: entry?.netns ?? fallback?.netns ?? '', runtimeConfig: entry?.runtimeConfig, args: entry?.args };
    // a namespace that is gone already: the plugins still release host-side state (IPAM, rules) with an empty CNI_NETNS
    if (a.netns && !(await fs.stat(a.netns).then(() => true, () => false))) a.netns = '';
    await this.delPlugins(list, a, entry?.result);
    await fs.rm(this.cacheFile(netName, containerId, ifname), { force: true });
  }

  /** Does DEL need the namespace still there? The bridge plugin's own ipMasq finds its rules through it. */
  async delNeedsNetns(netName: string, containerId: string, ifname: string): Promise<boolean> {
    const entry = await this.cached(netName, containerId, ifname);
    return !!entry?.config.plugins.some((p) => p.ipMasq === true);
  }

  async check(netName: string, containerId: string, ifname: string): Promise<void> {
    const entry = await this.cached(netName, containerId, ifname);
    if (!entry) throw new CniError('', 'CHECK', `no cached result for ${containerId} on ${netName}`);
    const a: Attachment = { containerId, ifname, netns: entry.netns, runtimeConfig: entry.runtimeConfig, args: entry.args };
    for (const p of entry.config.plugins) await this.exec('CHECK', this.pluginConf(entry.config, p, entry.runtimeConfig, entry.result), a);
  }

  private async delPlugins(list: ConfList, a: Attachment, prev: CniResult | undefined): Promise<void> {
    let first: unknown;
    for (const p of [...list.plugins].reverse()) {
      try {
        await this.exec('DEL', this.pluginConf(list, p, a.runtimeConfig, prev), a);
      } catch (err) {
        first ??= err;
      }
    }
    if (first) throw first;
  }

  /** The stdin for one plugin: name and version from the list, prevResult, and the runtime config it asked for. */
  private pluginConf(list: ConfList, p: PluginConf, rc: Record<string, unknown> | undefined, prev: CniResult | undefined): Record<string, unknown> {
    const conf: Record<string, unknown> = { ...p, cniVersion: list.cniVersion, name: list.name };
    const caps = (p.capabilities ?? {}) as Record<string, boolean>;
    if (rc) {
      const wanted: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(rc)) if (caps[k]) wanted[k] = v;
      if (Object.keys(wanted).length) conf.runtimeConfig = wanted;
    }
    if (prev) conf.prevResult = prev;
    return conf;
  }

  private async findPlugin(type: string): Promise<string> {
    for (const d of this.pluginDirs) {
      const p = path.join(d, type);
      if (await fs.access(p, fs.constants.X_OK).then(() => true, () => false)) return p;
    }
    throw new CniError(type, '', `CNI plugin "${type}" not found in ${this.pluginDirs.join(':')} (apt-get install containernetworking-plugins)`);
  }

  private async exec(cmd: 'ADD' | 'DEL' | 'CHECK', conf: Record<string, unknown>, a: Attachment): Promise<CniResult | undefined> {
    const type = String(conf.type);
    const bin = await this.findPlugin(type);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: a.containerId,
      CNI_NETNS: a.netns,
      CNI_IFNAME: a.ifname,
      CNI_PATH: this.pluginDirs.join(':'),
    };
    if (a.args) env.CNI_ARGS = a.args;
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', reject);
      child.on('close', (c) => resolve({ code: c ?? -1, stdout: out, stderr: err }));
      child.stdin.end(JSON.stringify(conf));
    });
    if (code !== 0) {
      let msg = stderr.trim() || stdout.trim();
      try {
        const e = JSON.parse(stdout) as { msg?: string; details?: string };
        if (e.msg) msg = e.details ? `${e.msg}: ${e.details}` : e.msg;
      } catch {
        // not JSON
      }
      throw new CniError(type, cmd, `plugin type="${type}" failed (${cmd.toLowerCase()}): ${msg}`, code);
    }
    if (cmd !== 'ADD') return undefined;
    return stdout.trim() ? (JSON.parse(stdout) as CniResult) : undefined;
  }
}
