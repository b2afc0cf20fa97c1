import { Command, Option } from 'commander';
import { invalid } from '../../lib/errors.js';
import type { SchedulerFlags } from '../../p2p/index.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

const int = (v: string): number => {
  if (!/^\d+$/.test(v)) throw invalid(`not a non-negative integer: ${v}`);
  return Number(v);
};

const seconds = (v: string): number => {
  if (!/^\d+(\.\d+)?$/.test(v)) throw invalid(`not a number of seconds: ${v}`);
  return Number(v);
};

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** The `p2p` command that `p2p scheduler` and `p2p peer` share: made by whichever registers first. */
export function p2pCommand(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === 'p2p') ??
    program.command('p2p').description('P2P image distribution: the scheduler and the per-host peer (registry mirror)')
  );
}

interface SchedulerOpts {
  listen?: string;
  parents?: number;
  childrenPerSlot?: number;
  seedStallSeconds?: number;
  backToSourceLimit?: number;
  insecureRegistry?: string[];
  config?: string;
  logLevel?: SchedulerFlags['logLevel'];
}

export function registerP2PScheduler(program: Command): void {
  p2pCommand(program)
    .command('scheduler')
    .description('run the P2P scheduler in the foreground: seeds, parents for every piece download, preheat jobs')
    .option('--listen <host:port>', 'API address (default 127.0.0.1:65003; env SAMPAN_P2P_SCHEDULER_LISTEN)')
    .option('--parents <n>', 'parents given to a child at a time (default 4)', int)
    .option('--children-per-slot <n>', 'children a parent takes per upload slot (default 2)', int)
    .option('--seed-stall-seconds <s>', 'a seed with no new piece for this long has stalled (default 10)', seconds)
    .option('--back-to-source-limit <n>', 'children per task that may go to the registry when the seed stalls (default 2)', int)
    .option('--insecure-registry <host>', 'registry (HOST[:PORT] or IPv4 CIDR) preheats reach over plain http; repeatable (loopback always is)', collect)
    .option('--config <file>', 'JSON config file (env SAMPAN_P2P_SCHEDULER_CONFIG); env and flags override it')
    .addOption(new Option('--log-level <level>', 'log level (default info)').choices(LOG_LEVELS))
    .action(async (o: SchedulerOpts) => {
      // every `sampan` command (the engine too) loads this file: the scheduler's modules only when it runs
      const { loadSchedulerConfig } = await import('../../p2p/index.js');
      const { startScheduler } = await import('../../p2p/index.js');
      const config = await loadSchedulerConfig({
        config: o.config,
        listen: o.listen,
        parents: o.parents,
        childrenPerSlot: o.childrenPerSlot,
        seedStallSeconds: o.seedStallSeconds,
        backToSourceLimit: o.backToSourceLimit,
        insecureRegistries: o.insecureRegistry,
        logLevel: o.logLevel,
      });
      const running = await startScheduler(config);
      await running.done;
      process.exit(0);
    });
}
