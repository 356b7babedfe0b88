/**
 * `geogridfs backup-node add|list|revoke|throttle`
 */
import { defineCommand } from './command.js';
import { print, table, withStore, formatBytes, type GlobalArgs } from './context.js';
import { addBackupNode, listBackupNodes, revokeBackupNode, setThrottle, parseHours, type ThrottleSettings } from '../meta/backup-nodes.js';
import { GeoError } from '../util/errors.js';

interface ThrottleArgs {
  'bytes-per-sec'?: number | undefined;
  concurrent?: number | undefined;
  hours?: string | undefined;
}

function throttleFrom(args: ThrottleArgs): ThrottleSettings {
  const t: ThrottleSettings = {};
  if (args['bytes-per-sec'] !== undefined) {
    if (!Number.isInteger(args['bytes-per-sec']) || args['bytes-per-sec'] < 0) throw new GeoError('USAGE', '--bytes-per-sec must be a whole number ≥ 0 (0 = unlimited)');
    t.bytesPerSec = args['bytes-per-sec'] === 0 ? null : args['bytes-per-sec'];
  }
  if (args.concurrent !== undefined) {
    if (!Number.isInteger(args.concurrent) || args.concurrent < 1 || args.concurrent > 1024) throw new GeoError('USAGE', '--concurrent must be 1-1024');
    t.maxConcurrent = args.concurrent;
  }
  if (args.hours !== undefined) t.allowedHours = args.hours === 'any' ? null : parseHours(args.hours);
  return t;
}

const throttleOptions = {
  'bytes-per-sec': { type: 'number', describe: 'download rate limit, bytes/s (0 = unlimited)' },
  concurrent: { type: 'number', describe: 'concurrent downloads allowed' },
  hours: { type: 'string', describe: 'allowed hours, e.g. 0-6 (server local time), or "any"' },
} as const;

const addCmd = defineCommand<GlobalArgs & ThrottleArgs & { name: string }>({
  command: 'add <name>',
  describe: 'register an off-site backup host; prints its token once (only a hash is stored)',
  builder: (y) => y.positional('name', { type: 'string' }).options(throttleOptions).example('$0 backup-node add offsite1 --bytes-per-sec 20000000 --hours 0-6', ''),
  handler: async (args, io) =>
    withStore(args, io, async (store) => {
      const { node, token } = await addBackupNode(store, args.name, throttleFrom(args));
      print(io, `backup node ${node.name} added. Its token (shown only now; put it in the backup host's config.ts as backup.token):\n${token}`);
      return 0;
    }),
});

const listCmd = defineCommand<GlobalArgs & { json?: boolean }>({
  command: 'list',
  describe: 'list backup nodes (tokens are never shown)',
  builder: (y) => y.option('json', { type: 'boolean' }).example('$0 backup-node list', ''),
  handler: async (args, io) =>
    withStore(args, io, async (store) => {
      const nodes = await listBackupNodes(store);
      if (args.json) print(io, JSON.stringify(nodes, null, 2));
      else
        print(
          io,
          table(
            ['NAME', 'ACTIVE', 'RATE', 'CONCURRENT', 'HOURS', 'LAST SEEN'],
            nodes.map((n) => [n.name, n.active ? 'yes' : 'revoked', n.bytesPerSec ? `${formatBytes(n.bytesPerSec)}/s` : 'unlimited', n.maxConcurrent, n.allowedHours ?? 'any', n.lastSeenAt?.toISOString() ?? 'never']),
          ),
        );
      return 0;
    }),
});

const revokeCmd = defineCommand<GlobalArgs & { name: string }>({
  command: 'revoke <name>',
  describe: 'revoke a backup node\'s token at once',
  builder: (y) => y.positional('name', { type: 'string' }).example('$0 backup-node revoke offsite1', ''),
  handler: async (args, io) =>
    withStore(args, io, async (store) => {
      await revokeBackupNode(store, args.name);
      print(io, `backup node ${args.name} revoked`);
      return 0;
    }),
});

const throttleCmd = defineCommand<GlobalArgs & ThrottleArgs & { name: string }>({
  command: 'throttle <name>',
  describe: 'change a backup node\'s limits (enforced by the API server)',
  builder: (y) => y.positional('name', { type: 'string' }).options(throttleOptions).example('$0 backup-node throttle offsite1 --bytes-per-sec 0', 'remove the rate limit'),
  handler: async (args, io) =>
    withStore(args, io, async (store) => {
      const n = await setThrottle(store, args.name, throttleFrom(args));
      print(io, `backup node ${n.name}: rate ${n.bytesPerSec ? `${n.bytesPerSec} B/s` : 'unlimited'}, ${n.maxConcurrent} concurrent, hours ${n.allowedHours ?? 'any'}`);
      return 0;
    }),
});

export const backupNodeCommand = defineCommand<GlobalArgs>({
  command: 'backup-node <command>',
  describe: 'off-site backup hosts: add, list, revoke, throttle',
  builder: (y) => y.example('$0 backup-node add offsite1', ''),
  subcommands: [addCmd, listCmd, revokeCmd, throttleCmd],
});
