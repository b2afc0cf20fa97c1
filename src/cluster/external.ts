/**
 * An external scheduler (`--scheduler-url`): after the filters, the manager POSTs the request and the candidates
 * to it and takes its placements. Anything but a usable answer in time is a 503 naming it, and nothing is created.
 */
import { errorMessage, unavailable } from '../lib/errors.js';
import type { Candidate, Request } from './scheduler.js';

/** What the external scheduler gets (docs/cluster.md documents it). */
export interface ExternalRequest {
  request: Omit<Request, 'constraints' | 'affinities' | 'ports'> & { constraints: string[]; affinities: string[]; ports: string[] };
  count: number;
  candidates: Array<Pick<Candidate, 'id' | 'name' | 'labels' | 'capacity' | 'reserved' | 'containers'>>;
}

export class ExternalScheduler {
  constructor(
    readonly url: string,
    private readonly timeoutMs: number,
  ) {}

  /** The node of each of `count` replicas, each one of `candidates` (a node at most once when the request publishes a fixed port). */
  async place(req: Request, count: number, candidates: Candidate[]): Promise<Candidate[]> {
    const body: ExternalRequest = {
      request: { ...req, constraints: req.constraints.map((r) => r.text), affinities: req.affinities.map((r) => r.text), ports: req.ports.map((p) => p.text) },
      count,
      candidates: candidates.map(({ id, name, labels, capacity, reserved, containers }) => ({ id, name, labels, capacity, reserved, containers })),
    };
    const fail = (why: string) => unavailable(`the external scheduler ${this.url} ${why}`);
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(this.timeoutMs) });
      text = await res.text();
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') throw fail(`did not answer within ${this.timeoutMs} ms`);
      throw fail(`could not be reached: ${errorMessage((err as Error).cause ?? err)}`);
    }
    if (!res.ok) throw fail(`answered ${res.status}: ${text.slice(0, 200)}`);
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      throw fail('answered something that is not JSON');
    }
    const placements = (answer as { placements?: unknown } | null)?.placements;
    if (!Array.isArray(placements) || placements.length !== count) throw fail(`answered no "placements" array of ${count} node ids`);
    const byId = new Map(candidates.map((c) => [c.id, c]));
    const out = placements.map((id) => {
      const c = byId.get(id as string);
      if (!c) throw fail(`placed a replica on ${JSON.stringify(id)}, which is not one of the candidates`);
      return c;
    });
    if (req.ports.length && new Set(placements).size < count) throw fail(`placed two replicas publishing port ${req.ports[0]!.text} on one node`);
    return out;
  }
}
