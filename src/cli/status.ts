/**
 * `geogridfs status [--json]`: nodes, space, heartbeats, compliance.
 */
import { defineCommand } from './command.js';
import { formatBytes, print, table, withStore, type GlobalArgs } from './context.js';
import { gridStats } from '../meta/stats.js';

function age(sec: number | null): string {
  if (sec === null) return 'never';
  if (sec < 120) return `${Math.round(sec)}s ago`;
  if (sec < 7200) return `${Math.round(sec / 60)}m ago`;
  return `${Math.round(sec / 3600)}h ago`;
}

export const statusCommand = defineCommand<GlobalArgs & { json?: boolean }>({
  command: 'status',
  describe: 'grid overview: nodes (state, space, heartbeat), files under/at/over target, backups',
  builder: (y) => y.option('json', { type: 'boolean', describe: 'machine-readable output' }).example('$0 status', '').example('$0 status --json | jq .under', ''),
  handler: async (args, io) =>
    withStore(args, io, async (store) => {
      const s = await gridStats(store);
      if (args.json) {
        print(io, JSON.stringify(s, null, 2));
        return 0;
      }
      print(
        io,
        [
          table(
            ['NODE', 'STATE', 'FREE', 'CAPACITY', 'HEARTBEAT', 'FILES', 'BYTES'],
            s.nodes.map((n) => [n.name, n.state, formatBytes(n.freeBytes), formatBytes(n.capacityBytes), age(n.heartbeatAgeSec), n.files, formatBytes(n.bytes)]),
          ),
          '',
          `files: ${s.files} (${formatBytes(s.bytes)}), folders: ${s.folders}, symlinks: ${s.symlinks}`,
          `replication: ${s.under} under target, ${s.at} at target, ${s.over} over target; ${s.queue} queued`,
          s.classes.length ? table(['CLASS', 'FILES', 'UNDER', 'AT', 'OVER'], s.classes.map((c) => [c.class, c.files, c.under, c.at, c.over])) : '',
          s.backupNodes.length
            ? table(['BACKUP NODE', 'ACTIVE', 'HELD', 'BEHIND', 'LAST SEEN'], s.backupNodes.map((b) => [b.name, b.active ? 'yes' : 'no', b.held, `${b.behindFiles} (${formatBytes(b.behindBytes)})`, age(b.lastSeenAgeSec)]))
            : '',
          `open problems: ${s.openProblems}`,
        ]
          .filter((l) => l !== '')
          .join('\n'),
      );
      return 0;
    }),
});
