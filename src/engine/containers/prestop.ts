/**
 * Pre-stop hooks: a container labelled `com.sampan.pre-stop` is told it is about to stop before its stop signal,
 * by that shell command run in it (`sh -c`), so middleware can leave a load balancer, flush, or hand work over
 * (Kubernetes' preStop exec hook, which Docker lacks). The hook spends the stop's grace period, never more: a hook
 * that hangs is killed at its timeout, and the signal and SIGKILL still come within the grace period.
 */
import { errorMessage } from '../../lib/errors.js';
import { parseGoDuration } from '../../lib/goduration.js';
import type { Logger } from '../../lib/log.js';
import type { ExecService } from './exec.js';
import type { ContainerRecord } from './model.js';
import type { PreStopRunner } from './store.js';

export const PRE_STOP_LABEL = 'com.sampan.pre-stop';
/** The hook's own limit (a Go duration, "5s", or seconds); within the grace period whatever it says. */
export const PRE_STOP_TIMEOUT_LABEL = 'com.sampan.pre-stop.timeout';

/**
 * How long the hook may run, of a grace period of `graceMs` (negative: wait for ever). Without a timeout label,
 * half the grace period: the process itself still gets the other half between its signal and SIGKILL.
 */
export function hookTimeoutMs(labels: Record<string, string> | undefined, graceMs: number): number {
  const text = labels?.[PRE_STOP_TIMEOUT_LABEL]?.trim();
  const ns = text ? (/^\d+$/.test(text) ? Number(text) * 1e9 : parseGoDuration(text)) : undefined;
  const asked = ns !== undefined && ns > 0 ? ns / 1e6 : undefined;
  if (graceMs < 0) return asked ?? 30_000;
  return Math.min(asked ?? graceMs / 2, graceMs);
}

export class PreStopHooks implements PreStopRunner {
  constructor(
    private readonly execs: ExecService,
    private readonly log: Logger,
  ) {}

  /** Runs the container's hook, if it has one, within the grace period; never throws (a failed hook does not keep a container from stopping). */
  async run(rec: ContainerRecord, graceMs: number): Promise<void> {
    const cmd = rec.Config.Labels?.[PRE_STOP_LABEL];
    const timeoutMs = hookTimeoutMs(rec.Config.Labels, graceMs);
    if (!cmd || rec.State.Status !== 'running' || timeoutMs <= 0) return;
    const id = rec.Id.slice(0, 12);
    let execId: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      execId = this.execs.create(rec.Id, { Cmd: ['sh', '-c', cmd], AttachStdin: false, AttachStdout: false, AttachStderr: false, Tty: false, Privileged: false }).Id;
      const exec = execId;
      const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      // starting the session counts against the timeout too: a stuck runtime must not hold the stop
      const started = await Promise.race([this.execs.start(exec, true), deadline]);
      if (started === 'timeout') {
        this.log.warn({ id, timeoutMs }, 'pre-stop hook did not start in time; stopping the container');
        return;
      }
      const outcome = await Promise.race([started.exited, deadline]);
      if (outcome === 'timeout') {
        this.execs.kill(exec);
        await Promise.race([started.exited, new Promise((r) => setTimeout(r, 1000).unref())]);
        this.log.warn({ id, timeoutMs }, 'pre-stop hook killed at its timeout; stopping the container');
      } else if (outcome !== 0) {
        this.log.warn({ id, exitCode: outcome }, 'pre-stop hook failed; stopping the container');
      } else {
        this.log.info({ id }, 'pre-stop hook done');
      }
    } catch (err) {
      this.log.warn({ id, err: errorMessage(err) }, 'pre-stop hook could not run; stopping the container');
    } finally {
      clearTimeout(timer);
      if (execId) this.execs.forget(execId);
    }
  }
}
