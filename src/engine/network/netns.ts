import { promises as fs } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const NETNS_DIR = '/run/netns';

/** A persistent, named network namespace per container (as `ip netns` keeps them), joined through the OCI spec. */
export function netnsName(containerId: string): string {
  return `sampan-${containerId.slice(0, 12)}`;
}

export function netnsPath(containerId: string): string {
  return `${NETNS_DIR}/${netnsName(containerId)}`;
}

async function present(p: string): Promise<boolean> {
  return fs.stat(p).then(() => true, () => false);
}

/** Creates the namespace (idempotent) with its loopback up; returns its path. */
export async function createNetns(containerId: string): Promise<string> {
  const p = netnsPath(containerId);
  const name = netnsName(containerId);
  if (!(await present(p))) {
    try {
      await run('ip', ['netns', 'add', name]);
    } catch (err) {
      if (!(await present(p))) throw new Error(`cannot create network namespace ${name}: ${(err as { stderr?: string }).stderr?.trim() || String(err)}`);
    }
  }
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return p;
}

export async function removeNetns(containerId: string): Promise<void> {
  const p = netnsPath(containerId);
  if (!(await present(p))) return;
  await run('ip', ['netns', 'delete', netnsName(containerId)]).catch(async () => {
    await run('umount', ['-l', p]).catch(() => undefined);
    await fs.rm(p, { force: true }).catch(() => undefined);
  });
}
