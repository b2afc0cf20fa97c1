/**
 * One engine per root, exec root and socket. A second engine on the same state would re-adopt the first one's
 * containers and, when it stopped, delete the socket the first one still listens on; like dockerd, each engine
 * holds an flock on a pidfile (in the root and in the exec root) for as long as it runs, and one that cannot
 * take it refuses to start.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { conflict } from '../lib/errors.js';
import { ensureDir } from '../lib/fsutil.js';

export interface PidfileLock {
  release(): void;
}

/**
 * Lock `file` (created if missing) and write this process's pid into it. The flock is taken by util-linux's
 * flock(1) on a descriptor this process passes it: the lock belongs to the open file, which stays open here,
 * so it lasts until this process closes it or dies (kill -9 included) and no native addon is needed.
 */
function lockPidfile(file: string): PidfileLock | { heldBy: string } {
  for (;;) {
    const fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o644);
    const r = spawnSync('flock', ['--nonblock', '--exclusive', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    if (r.status !== 0) {
      closeSync(fd);
      if (r.error || r.status !== 1) throw new Error(`flock ${file}: ${r.error?.message ?? r.stderr.toString().trim()}`);
      return { heldBy: readFileSync(file, 'utf8').trim() || 'unknown' };
    }
    // a stopping engine removes its pidfile: a lock taken on a file unlinked meanwhile protects nothing
    const same = (() => {
      try {
        return statSync(file).ino === fstatSync(fd).ino;
      } catch {
        return false;
      }
    })();
    if (!same) {
      closeSync(fd);
      continue;
    }
    ftruncateSync(fd, 0);
    writeSync(fd, String(process.pid), 0);
    return { release: () => closeSync(fd) };
  }
}

/** Does something accept connections on this unix socket? */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Take the engine's locks (ROOT/engine.pid and EXECROOT/engine.pid) and make sure no other process answers on
 * its unix sockets (an engine with another root would otherwise lose its socket to this one); refuses with a
 * conflict saying which engine is in the way.
 */
export async function claimInstance(c: { root: string; execRoot: string; hosts: string[] }): Promise<PidfileLock> {
  const held: PidfileLock[] = [];
  const release = () => {
    for (const l of held.splice(0)) l.release();
  };
  try {
    for (const dir of new Set([c.root, c.execRoot])) {
      await ensureDir(dir, 0o711);
      const file = path.join(dir, 'engine.pid');
      const l = lockPidfile(file);
      if ('heldBy' in l) throw conflict(`another engine (pid ${l.heldBy}) is running with ${file} locked: stop it first (a second engine needs its own --root, --exec-root and --host)`);
      held.push(l);
    }
    for (const h of c.hosts) {
      if (!h.startsWith('unix://')) continue;
      const p = h.slice(7);
      if (await answers(p)) throw conflict(`${p} is in use: another engine (or another process) answers on it; stop it first (a second engine needs its own --root, --exec-root and --host)`);
    }
  } catch (err) {
    release();
    throw err;
  }
  return { release };
}
