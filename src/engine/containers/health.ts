/**
 * Docker's health checks: while a container runs (not paused), its HEALTHCHECK test runs as an exec session
 * every interval; the last results, the failing streak and the status live in State.Health.
 */
import { errorMessage } from '../../lib/errors.js';
import { formatGoDuration } from '../../lib/goduration.js';
import { AttachConnection } from './attach.js';
import type { ContainerRecord, HealthResult, HealthState } from './model.js';
import type { ContainerService } from './service.js';
import type { ExecService } from './exec.js';
import { probeCommand } from './healthcheck.js';

/** Docker's defaults for zero durations and retries (nanoseconds, as the API sends them). */
export const HEALTH_DEFAULTS = { Interval: 30e9, Timeout: 30e9, StartPeriod: 0, StartInterval: 5e9, Retries: 3 };
const MAX_LOG = 5;
const MAX_OUTPUT = 4096;
/** Starting the exec has its own limit, apart from the check's timeout (as Docker). */
const START_LIMIT_MS = 30_000;

const nsOr = (v: number | undefined, def: number) => (v ? v : def);
const ms = (ns: number) => Math.max(1, ns / 1e6);

/** Output up to 4096 bytes; "..." marks that more was dropped (Docker's limitedBuffer). */
class LimitedOutput {
  private readonly parts: Buffer[] = [];
  private size = 0;
  private truncated = false;

  write(buf: Buffer): void {
    const keep = Math.min(MAX_OUTPUT - this.size, buf.length);
    if (keep > 0) {
      this.parts.push(buf.subarray(0, keep));
      this.size += keep;
    }
    if (keep < buf.length) this.truncated = true;
  }

  toString(): string {
    return Buffer.concat(this.parts).toString('utf8') + (this.truncated ? '...' : '');
  }
}

interface Monitor {
  stopped: boolean;
  timer?: NodeJS.Timeout;
  /** Kills the check in flight (the container stops or pauses). */
  abort?: () => void;
}

/** One monitor per running container with a health check; Docker's health.go rules. */
export class HealthMonitor {
  private readonly monitors = new Map<string, Monitor>();

  constructor(
    private readonly containers: ContainerService,
    private readonly execs: ExecService,
  ) {}

  /** A start or restart: the status begins `starting` again, the log stays (Docker's initHealthMonitor). */
  started(rec: ContainerRecord): void {
    if (!probeCommand(rec)) return;
    this.stop(rec);
    rec.State.Health = { Status: 'starting', FailingStreak: 0, Log: rec.State.Health?.Log ?? [] };
    this.update(rec);
  }

  /** Run the monitor while the container runs and is not paused, stop it otherwise (Docker's updateHealthMonitor). */
  update(rec: ContainerRecord): void {
    if (!rec.State.Health) return;
    if (rec.State.Status === 'running' && probeCommand(rec)) {
      if (!this.monitors.has(rec.Id)) this.open(rec);
    } else this.stop(rec);
  }

  /** Re-adopted after an engine restart: checks go on with the saved status. */
  resume(rec: ContainerRecord): void {
    if (rec.State.Health) this.update(rec);
    else this.started(rec);
  }

  /** Stop checking; a monitor that ran leaves the status `unhealthy`, as Docker does for a stopped or paused container. */
  stop(rec: ContainerRecord): void {
    const m = this.monitors.get(rec.Id);
    if (!m) return;
    this.monitors.delete(rec.Id);
    m.stopped = true;
    clearTimeout(m.timer);
    m.abort?.();
    if (rec.State.Health) rec.State.Health.Status = 'unhealthy';
  }

  /** Engine shutdown: timers go, the saved state stays as it is (checks resume at the next start). */
  close(): void {
    for (const m of this.monitors.values()) {
      m.stopped = true;
      clearTimeout(m.timer);
      m.abort?.();
    }
    this.monitors.clear();
  }

  private open(rec: ContainerRecord): void {
    const m: Monitor = { stopped: false };
    this.monitors.set(rec.Id, m);
    const schedule = () => {
      m.timer = setTimeout(() => void tick(), this.nextDelay(rec));
      m.timer.unref();
    };
    const tick = async () => {
      if (m.stopped) return;
      const { start, r } = await this.probe(rec, m);
      if (m.stopped) return; // a result that arrives after the stop is dropped
      if (rec.State.Status === 'running') this.record(rec, start, r);
      schedule();
    };
    schedule();
  }

  /** The start interval while the start period lasts and no check has passed yet; the interval otherwise. */
  private nextDelay(rec: ContainerRecord): number {
    const c = rec.Config.Healthcheck ?? {};
    const elapsedNs = (Date.now() - Date.parse(rec.State.StartedAt)) * 1e6;
    if (elapsedNs >= nsOr(c.StartPeriod, HEALTH_DEFAULTS.StartPeriod)) return ms(nsOr(c.Interval, HEALTH_DEFAULTS.Interval));
    if (rec.State.Health?.Status === 'starting') return ms(nsOr(c.StartInterval, HEALTH_DEFAULTS.StartInterval));
    return ms(nsOr(c.Interval, HEALTH_DEFAULTS.Interval));
  }

  /** One check through the engine's exec path: output captured, killed at the timeout. */
  private async probe(rec: ContainerRecord, m: Monitor): Promise<{ start: Date; r: HealthResult }> {
    const start = new Date();
    const timeoutNs = nsOr(rec.Config.Healthcheck?.Timeout, HEALTH_DEFAULTS.Timeout);
    let execId: string | undefined;
    try {
      execId = this.execs.create(rec.Id, { Cmd: probeCommand(rec), AttachStdin: false, AttachStdout: true, AttachStderr: true, Tty: false, Privileged: false }).Id;
      const id = execId;
      const out = new LimitedOutput();
      let drained: Promise<void> = Promise.resolve();
      let limit: NodeJS.Timeout | undefined;
      const started = await Promise.race([
        this.execs.start(id, false, async (sock) => {
          const conn = await AttachConnection.connect(sock);
          conn.on('data', (_stream: number, buf: Buffer) => out.write(buf));
          drained = new Promise((resolve) => conn.once('close', resolve));
        }),
        new Promise<never>((_, reject) => {
          limit = setTimeout(() => reject(new Error(`timed out starting health check for container ${rec.Id}`)), START_LIMIT_MS);
        }),
      ]).finally(() => clearTimeout(limit));
      let timer: NodeJS.Timeout | undefined;
      // a stop (m.abort) kills the check like a timeout; its result is dropped
      const timedOut = await new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), ms(timeoutNs));
        m.abort = () => resolve(true);
        void started.exited.then(() => resolve(false));
      });
      clearTimeout(timer);
      m.abort = undefined;
      if (timedOut) {
        this.execs.kill(id);
        await started.exited;
        const text = out.toString();
        const msg = `Health check exceeded timeout (${formatGoDuration(timeoutNs)})${text ? `: ${text}` : ''}`;
        return { start, r: { Start: start.toISOString(), End: new Date().toISOString(), ExitCode: -1, Output: msg } };
      }
      const code = await started.exited;
      // conmon ends the attach stream just after the exit: let the last output arrive
      await Promise.race([drained, new Promise((r) => setTimeout(r, 1000).unref())]);
      return { start, r: { Start: start.toISOString(), End: new Date().toISOString(), ExitCode: code, Output: out.toString() } };
    } catch (err) {
      return { start, r: failed(start, errorMessage(err)) };
    } finally {
      if (execId) this.execs.forget(execId);
    }
  }

  /** Docker's handleProbeResult: the log keeps 5, failures in the start period count only once a check passed. */
  private record(rec: ContainerRecord, start: Date, r: HealthResult): void {
    const h = rec.State.Health;
    if (!h) return;
    const c = rec.Config.Healthcheck ?? {};
    const old = h.Status;
    h.Log = [...h.Log, r].slice(-MAX_LOG);
    if (r.ExitCode === 0) {
      h.FailingStreak = 0;
      h.Status = 'healthy';
    } else {
      const inStartPeriod = h.Status === 'starting' && (start.getTime() - Date.parse(rec.State.StartedAt)) * 1e6 < nsOr(c.StartPeriod, HEALTH_DEFAULTS.StartPeriod);
      if (!inStartPeriod) {
        h.FailingStreak++;
        if (h.FailingStreak >= ((c.Retries ?? 0) > 0 ? c.Retries! : HEALTH_DEFAULTS.Retries)) h.Status = 'unhealthy';
      }
    }
    if (h.Status === old) return;
    // saved on a status change only: every check would mean a disk write per interval per container
    void this.containers.mutate(rec.Id, async () => undefined).catch(() => undefined);
    this.containers.d.events.emit('container', `health_status: ${h.Status}`, rec.Id, this.containers.attrs(rec));
  }
}

function failed(start: Date, message: string): HealthResult {
  return { Start: start.toISOString(), End: new Date().toISOString(), ExitCode: -1, Output: message };
}
