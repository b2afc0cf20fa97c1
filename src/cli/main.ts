import { Command } from 'commander';
import { errorMessage } from '../lib/errors.js';
import { registerEngine } from './commands/engine.js';
import { registerUp } from './commands/up.js';
import { registerImageSeed } from './commands/seed.js';
import { registerContainerCommands } from './commands/containers.js';
import { registerUpdate } from './commands/update.js';
import { registerBuild } from './commands/build.js';
import { registerImageCommands } from './commands/images.js';
import { registerRegistry } from './commands/registry.js';
import { registerRegistryClientCommands } from './commands/registry-client.js';
import { p2pCommand, registerP2PScheduler } from './commands/p2p-scheduler.js';
import { registerP2pPeer, registerP2pStatus, registerPreheat } from './commands/p2p-peer.js';
import { registerCluster } from './commands/cluster.js';
import { registerNode } from './commands/node.js';
import { registerRelease } from './commands/release.js';

const program = new Command();
program
  .name('sampan')
  .description('Sampan: an open container platform. Daemons (engine) and a Docker-compatible client.')
  .version('0.1.0')
  .option('-H, --host <url>', 'engine API address for client commands (unix:///path or tcp://host:port; env SAMPAN_HOST, DOCKER_HOST)')
  .showHelpAfterError();

registerEngine(program);
registerUp(program);
registerImageSeed(program);
registerContainerCommands(program);
registerUpdate(program);
registerBuild(program);
registerImageCommands(program);
registerRegistry(program);
registerRegistryClientCommands(program);
registerP2PScheduler(program);
registerP2pPeer(p2pCommand(program));
registerP2pStatus(p2pCommand(program));
registerPreheat(program);
registerCluster(program);
registerNode(program);
registerRelease(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`sampan: ${errorMessage(err)}\n`);
  process.exit(1);
});
