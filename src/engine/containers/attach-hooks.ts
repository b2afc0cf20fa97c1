import { promises as fs, constants } from 'node:fs';
import path from 'node:path';
import { conflict } from '../../lib/errors.js';
import { isLive } from './model.js';
import { ContainerSupervisor } from './supervisor.js';

/** Called with the attach socket's path once conmon made it, before the process runs. */
export type AttachHook = (socketPath: string) => Promise<void>;

/** Attaching to a container's stdio (conmon's attach socket), now or at its next start, and resizing its terminal. */
export abstract class ContainerAttach extends ContainerSupervisor {
  protected readonly pendingAttach = new Map<string, AttachHook[]>();

  /** Run the hook with the attach socket now (running) or just before the process starts (created). */
  async attach(ref: string, hook: AttachHook): Promise<void> {
    const rec = this.get(ref);
    if (isLive(rec)) {
      try {
        return await hook(this.attachSocket(rec.Id));
      } catch (err) {
        // a process that just ended takes conmon and its socket with it before its exit is recorded: then, as for
        // any stopped container, the session waits for the next start
        if (!(await this.exitRecorded(rec, 2000))) throw err;
      }
    }
    if (rec.State.Status === 'created' || rec.State.Status === 'exited' || rec.State.Status === 'restarting') {
      const list = this.pendingAttach.get(rec.Id) ?? [];
      list.push(hook);
      this.pendingAttach.set(rec.Id, list);
      return;
    }
    throw conflict(`You cannot attach to a stopped container, start it first`);
  }

  /** Calls fn if the container's next start fails; returns the unsubscribe function. */
  onStartFailure(id: string, fn: () => void): () => void {
    this.exits.once(`fail:${id}`, fn);
    return () => this.exits.off(`fail:${id}`, fn);
  }

  dropPendingAttach(id: string, hook: AttachHook): void {
    const list = this.pendingAttach.get(id);
    if (list) this.pendingAttach.set(id, list.filter((h) => h !== hook));
  }

  async resize(ref: string, h: number, w: number): Promise<void> {
    const rec = this.get(ref);
    if (!isLive(rec)) throw conflict(`Container ${rec.Id} is not running`);
    if (!rec.Config.Tty) return;
    await writeCtl(path.join(this.bundle(rec.Id), 'ctl'), h, w);
  }
}

/** conmon's control fifo: "1 <height> <width>" resizes the terminal. */
export async function writeCtl(ctl: string, h: number, w: number): Promise<void> {
  let fh;
  try {
    fh = await fs.open(ctl, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch {
    return; // no reader yet: the next resize gets through
  }
  try {
    await fh.write(`1 ${h} ${w}\n`);
  } finally {
    await fh.close();
  }
}
