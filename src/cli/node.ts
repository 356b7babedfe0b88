/**
 * `geogridfs node add|list|set-state|remove`
 */
import { defineCommand } from './command.js';
import { formatBytes, print, table, withStore, type GlobalArgs } from './context.js';
import { addNode, listNodes, setNodeState, removeNode, NODE_STATES, type NodeState } from '../meta/nodes.js';

const addCmd = defineCommand<GlobalArgs & { name: string; state: NodeState }>({
  command: 'add <name>',
  describe: 'register a storage node (its path on each host is in config.ts `nodes`)',
  builder: (y) =>
    y
      .positional('name', { type: 'string', describe: 'node name (letters, digits, . _ -)' })
      .option('state', { choices: NODE_STATES, default: 'active' as NodeState, describe: 'initial state' })
      .example('$0 node add node1', 'register node1 as active'),
  handler: async (args, io) =>
    withStore(args, io, async (store) => {
      const n = await addNode(store, args.name, args.state);
      print(io, `node ${n.name} added (${n.state})`);
      return 0;
    }),
});

const listCmd = defineCommand<GlobalArgs & { json?: boolean }>({
  command: 'list',
  describe: 'list storage nodes',
  builder: (y) => y.option('json', { type: 'boolean', describe: 'machine-readable output' }).example('$0 node list', ''),
  handler: async (args, io) =>
    withStore(args, io, async (store) => {
      const nodes = await listNodes(store);
      if (args.json) print(io, JSON.stringify(nodes, null, 2));
      else
        print(
          io,
          table(
            ['NAME', 'STATE', 'FREE', 'CAPACITY', 'HEARTBEAT'],
            nodes.map((n) => [n.name, n.state, formatBytes(n.freeBytes), formatBytes(n.capacityBytes), n.heartbeatAt ? n.heartbeatAt.toISOString() : 'never']),
          ),
        );
      return 0;
    }),
});

const setStateCmd = defineCommand<GlobalArgs & { name: string; state: NodeState }>({
  command: 'set-state <name> <state>',
  describe: 'active: takes new files; readonly: serves reads only; drain: copies its files away then empties; dead: its replicas stop counting',
  builder: (y) =>
    y
      .positional('name', { type: 'string' })
      .positional('state', { choices: NODE_STATES })
      .example('$0 node set-state node3 drain', 'move node3\'s files elsewhere before retiring it'),
  handler: async (args, io) =>
    withStore(args, io, async (store) => {
      const n = await setNodeState(store, args.name, args.state);
      print(io, `node ${n.name} is now ${n.state}`);
      return 0;
    }),
});

const removeCmd = defineCommand<GlobalArgs & { name: string }>({
  command: 'remove <name>',
  describe: 'remove a node from metadata (refused while it holds the only copy of any file)',
  builder: (y) => y.positional('name', { type: 'string' }).example('$0 node remove node3', 'after draining it'),
  handler: async (args, io) =>
    withStore(args, io, async (store) => {
      await store.txn((tx) => removeNode(tx, args.name));
      print(io, `node ${args.name} removed`);
      return 0;
    }),
});

export const nodeCommand = defineCommand<GlobalArgs>({
  command: 'node <command>',
  describe: 'storage nodes: add, list, set-state, remove',
  builder: (y) => y.example('$0 node add node1', '').example('$0 node set-state node2 readonly', ''),
  subcommands: [addCmd, listCmd, setStateCmd, removeCmd],
});
