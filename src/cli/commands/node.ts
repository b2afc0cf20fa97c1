/** `sampan node ls|inspect|update|rm`: the cluster manager's nodes, over its /sampan/v1/nodes routes (as `docker node`). */
import { Option, type Command } from 'commander';
import { clientFor, withErrors } from '../client.js';
import { printJson, printJsonLines, shortId, table } from '../format.js';
import { checkFormat, collect, hostOpt, parseLabels } from './options.js';
import type { NodeView } from '../../cluster/index.js';

/** Docker's STATUS words for a node. */
const STATUS = { up: 'Ready', down: 'Down' } as const;
const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

function nodeRows(nodes: NodeView[]): string {
  const sorted = [...nodes].sort((a, b) => a.name.localeCompare(b.name));
  return table(
    ['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'CONTAINERS', 'ENGINE VERSION', 'LABELS'],
    sorted.map((n) => [shortId(n.id), n.name, n.degraded ? `${STATUS[n.state]} (degraded: ${Object.keys(n.degraded).join(',')})` : STATUS[n.state], cap(n.availability), n.containers, n.version, Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',')]),
  );
}

const nodePath = (ref: string) => `/sampan/v1/nodes/${encodeURIComponent(ref)}`;

export function registerNode(program: Command): void {
  const node = program.command('node').description('the nodes of a cluster (against its manager: --host or DOCKER_HOST)');
  hostOpt(
    node
      .command('ls')
      .alias('list')
      .description('List the nodes of the cluster')
      .option('-q, --quiet', 'only display IDs')
      .option('--format <format>', 'output format: table or json', 'table'),
  ).action(withErrors(async (o: { quiet?: boolean; format?: string }, cmd: Command) => {
    const format = checkFormat(o.format);
    const nodes = await clientFor(cmd).json<NodeView[]>('GET', '/sampan/v1/nodes');
    if (o.quiet) process.stdout.write(nodes.map((n) => `${n.id}\n`).join(''));
    else if (format === 'json') printJsonLines(nodes);
    else process.stdout.write(`${nodeRows(nodes)}\n`);
  }));
  hostOpt(
    node
      .command('inspect')
      .description('Display detailed information on one or more nodes')
      .argument('<node...>', 'node names or IDs'),
  ).action(withErrors(async (refs: string[], _o: unknown, cmd: Command) => {
    const client = clientFor(cmd);
    const out: NodeView[] = [];
    for (const r of refs) out.push(await client.json<NodeView>('GET', nodePath(r)));
    printJson(out);
  }));
  hostOpt(
    node
      .command('update')
      .description('Update a node: its labels (what constraints see) and availability (a drained node takes no new containers)')
      .argument('<node>', 'node name or ID')
      .option('--label-add <k=v>', 'add or update a node label (repeatable)', collect)
      .option('--label-rm <k>', 'remove a node label (repeatable)', collect)
      .addOption(new Option('--availability <a>', 'availability of the node').choices(['active', 'drain'])),
  ).action(withErrors(async (ref: string, o: { labelAdd?: string[]; labelRm?: string[]; availability?: 'active' | 'drain' }, cmd: Command) => {
    const body = { ...(o.labelAdd && { labelAdd: parseLabels(o.labelAdd) }), ...(o.labelRm && { labelRm: o.labelRm }), ...(o.availability && { availability: o.availability }) };
    await clientFor(cmd).json('PATCH', nodePath(ref), { body });
    process.stdout.write(`${ref}\n`);
  }));
  hostOpt(
    node
      .command('rm')
      .alias('remove')
      .description('Remove nodes from the cluster: their records, placements, addresses and network blocks (a node that is up only with --force)')
      .argument('<node...>', 'node names or IDs')
      .option('-f, --force', 'remove a node that is up'),
  ).action(withErrors(async (refs: string[], o: { force?: boolean }, cmd: Command) => {
    const client = clientFor(cmd);
    for (const r of refs) {
      await client.request('DELETE', nodePath(r), { query: { force: o.force ? 1 : undefined } });
      process.stdout.write(`${r}\n`);
    }
  }));
}
