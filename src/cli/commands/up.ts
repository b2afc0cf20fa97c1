import type { Command } from 'commander';
import { seedImage } from './seed.js';
import { parseBytes } from '../../lib/units.js';

/** The all-in-one on loopback: for now the engine with its base image. */
export function registerUp(program: Command): void {
  program
    .command('up')
    .description('start the all-in-one on this host (engine on a unix socket, base image seeded) in the foreground')
    .option('--root <dir>', 'state directory', '/var/lib/sampan')
    .option('--exec-root <dir>', 'runtime directory', '/run/sampan')
    .option('--socket <path>', 'engine socket', '/run/sampan/engine.sock')
    .option('--btrfs-image <size>', 'keep the root on btrfs in a sparse image of this size (<root>.btrfs), for exact --storage-opt size= quotas')
    .action(async (o: { root: string; execRoot: string; socket: string; btrfsImage?: string }) => {
      const { loadEngineConfig } = await import('../../engine/index.js');
      const { startEngine } = await import('../../engine/index.js');
      const { mountBtrfsRoot } = await import('../../engine/index.js');
      if (o.btrfsImage) await mountBtrfsRoot(o.root, parseBytes(o.btrfsImage));
      const config = await loadEngineConfig({ root: o.root, execRoot: o.execRoot, hosts: [`unix://${o.socket}`] });
      const running = await startEngine(config);
      const host = `unix://${o.socket}`;
      if (!running.engine.images.has('busybox:latest')) {
        for (const l of await seedImage(host)) running.log.info(l);
      }
      process.stdout.write(
        [
          '',
          'Sampan is up. Use it with the docker CLI:',
          '',
          `  export DOCKER_HOST=${host}`,
          '  docker run --rm busybox echo hello from sampan',
          '',
          'Press Ctrl-C to stop the engine (containers keep running).',
          '',
        ].join('\n'),
      );
      await running.done;
      process.exit(0);
    });
}
