import type { Command } from 'commander';
import { EngineClient, resolveHost } from '../../lib/engine-client.js';
import { buildBusyboxArchive } from '../../engine/index.js';

/** Load the embedded base image (busybox:latest from Debian's busybox-static) into an engine. */
export async function seedImage(host: string): Promise<string[]> {
  const archive = await buildBusyboxArchive();
  const client = new EngineClient({ host });
  const res = await client.request('POST', '/images/load', { body: archive, headers: { 'Content-Type': 'application/x-tar' } });
  const lines: string[] = [];
  for (const l of res.body.toString('utf8').split('\n').filter(Boolean)) {
    const m = JSON.parse(l) as { stream?: string; error?: string };
    if (m.error) throw new Error(m.error);
    if (m.stream?.trim()) lines.push(m.stream.trim());
  }
  return lines;
}

export function registerImageSeed(program: Command): void {
  const image = program.commands.find((c) => c.name() === 'image') ?? program.command('image').description('manage images');
  image
    .command('seed')
    .description('create busybox:latest in the engine from the host\'s busybox-static (the built-in base image; no network needed)')
    .option('--host <url>', 'engine API address')
    .action(async (o: { host?: string }, cmd: Command) => {
      const host = resolveHost(o.host ?? (cmd.optsWithGlobals() as { host?: string }).host);
      for (const l of await seedImage(host)) process.stdout.write(`${l}\n`);
    });
}
