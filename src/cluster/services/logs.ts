/**
 * `docker service logs`: the logs of the service's tasks' containers, each engine's stream read and merged, every
 * line given moby's details (`com.docker.swarm.node.id=…,com.docker.swarm.service.id=…,com.docker.swarm.task.id=…`)
 * before its text, from which the CLI prints `SERVICE.SLOT.TASK@NODE |`.
 */
import type { LogsOptions, Output } from '../../docker-api/index.js';
import { Demuxer } from '../../lib/engine-client.js';
import { errorMessage } from '../../lib/errors.js';
import { frame } from '../../lib/stdcopy.js';
import type { Cluster } from '../backend/index.js';
import type { ServiceRecord, TaskRecord } from './records.js';

export async function serviceLogs(c: Cluster, svc: ServiceRecord, tasks: TaskRecord[], o: LogsOptions & { details: boolean }, out: Output): Promise<void> {
  const w = out.open('application/vnd.docker.multiplexed-stream');
  const present = tasks.filter((t) => c.state.entry(t.container) && c.state.nodes.get(t.node)?.rec.state === 'up');
  await Promise.all(present.map(async (t) => {
    const node = c.state.nodes.get(t.node)!;
    const details = Buffer.from(`com.docker.swarm.node.id=${t.node},com.docker.swarm.service.id=${svc.id},com.docker.swarm.task.id=${t.id}`);
    try {
      const res = await c.client(node).stream('GET', `/containers/${t.container}/logs`, { query: { stdout: o.stdout, stderr: o.stderr, follow: o.follow, timestamps: o.timestamps, tail: o.tail, since: o.since, until: o.until } });
      out.signal.addEventListener('abort', () => res.destroy(), { once: true });
      const d = new Demuxer((stream, payload) => {
        if (stream !== 1 && stream !== 2) return;
        let line = payload;
        if (o.details) {
          // after the timestamp, when there is one: "TS DETAILS TEXT"
          const sp = o.timestamps ? payload.indexOf(0x20) : -1;
          line = sp >= 0 ? Buffer.concat([payload.subarray(0, sp + 1), details, Buffer.from(' '), payload.subarray(sp + 1)]) : Buffer.concat([details, Buffer.from(' '), payload]);
        }
        w.write(frame(stream, line));
      });
      for await (const chunk of res) d.push(chunk as Buffer);
    } catch (err) {
      if (!out.signal.aborted) w.write(frame(2, Buffer.from(`${details.toString()} error from ${node.rec.name}: ${errorMessage(err)}\n`)));
    }
  }));
  w.end();
}
