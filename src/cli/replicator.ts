/**
 * `geogridfs replicator walk|replicate|watch|scrub` — the storage node's
 * replicator (config host.node names the node, config nodes[that] is its
 * local folder).
 */
import { defineCommand } from './command.js';
import { print, printErr, withStore, type CliIo, type GlobalArgs } from './context.js';
import { openReplicator, type ReplicatorContext } from '../replicator/context.js';
import { walk, formatWalkProgress, formatWalkSummary } from '../replicator/walk.js';
import { replicate, formatReplicateSummary } from '../replicator/replicate.js';
import { scrub, formatScrubSummary } from '../replicator/scrub.js';
import { watch } from '../replicator/watch.js';
import type { MetaStore } from '../meta/store.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../util/log.js';

async function withReplicator(args: GlobalArgs, io: CliIo, fn: (ctx: ReplicatorContext) => Promise<number>, opts: { waitForDatabase?: boolean } = {}): Promise<number> {
  return withStore(
    args,
    io,
    async (store: MetaStore, config: Config, log: Logger) => {
      const ctx = await openReplicator(store, config, log, io.signal);
      try {
        return await fn(ctx);
      } finally {
        await ctx.pool.close();
      }
    },
    { name: 'replicator', poolSize: 4, ...opts },
  );
}

const walkCmd = defineCommand<GlobalArgs & { path?: string }>({
  command: 'walk',
  describe: 'hash this node\'s files: register unknown ones, add this node to the replicas of matching ones, report mismatches (resumable)',
  builder: (y) =>
    y
      .option('path', { alias: 'p', type: 'string', describe: 'only this subtree (a path inside the tree, e.g. /photos/2024)' })
      .example('$0 replicator walk', 'once when a node joins (progress on a terminal, a summary under cron)')
      .example('$0 replicator walk -p /photos/2024', 'after putting files there by hand'),
  handler: async (args, io) =>
    withReplicator(args, io, async (ctx) => {
      const tty = io.stderr.isTTY === true && !args.quiet;
      const s = await walk(ctx, {
        ...(args.path ? { subpath: args.path } : {}),
        count: tty,
        ...(tty ? { onProgress: (p) => io.stderr.write(`\r\x1b[K${formatWalkProgress(p)}`) } : {}),
      });
      if (tty) io.stderr.write('\r\x1b[K');
      if (!args.quiet || s.errors || s.mismatches) print(io, formatWalkSummary(s));
      return s.errors ? 1 : s.interrupted ? 130 : 0;
    }),
});

const replicateCmd = defineCommand<GlobalArgs & { trim?: boolean; 'budget-sec'?: number }>({
  command: 'replicate',
  describe: 'one run: apply pending deletes/renames, copy the files this node should hold, release drained/stale copies (cron every minute)',
  builder: (y) =>
    y
      .option('trim', { type: 'boolean', describe: 'remove this node\'s surplus copies of over-replicated files (default: replicator.trimSurplus, false; --no-trim keeps them)' })
      .option('budget-sec', { type: 'number', describe: 'stop taking new work after this many seconds (default config replicator.budgetSec)' })
      .example('* * * * * geogridfs replicator replicate -q', 'crontab line: quiet unless something fails')
      .example('$0 replicator replicate --trim', 'also remove surplus copies of over-replicated files (never below the target)'),
  handler: async (args, io) =>
    withReplicator(args, io, async (ctx) => {
      const s = await replicate(ctx, { ...(args.trim !== undefined ? { trim: args.trim } : {}), ...(args['budget-sec'] ? { budgetSec: args['budget-sec'] } : {}) });
      if (s.locked) return 0; // an overlapping run: exit at once, quietly
      if (!args.quiet || s.failed) print(io, formatReplicateSummary(s));
      return s.failed ? 1 : 0;
    }),
});

const watchCmd = defineCommand<GlobalArgs & { interval?: number; files?: boolean }>({
  command: 'watch',
  describe: 'daemon: replicate on every change (LISTEN) and register files placed by hand (file watcher)',
  builder: (y) =>
    y
      .option('interval', { type: 'number', default: 60, describe: 'run a pass at least every N seconds' })
      .option('files', { type: 'boolean', default: true, describe: 'watch the node folder for files placed by hand (--no-files on huge trees: the watcher keeps every name in memory; walk from cron instead)' })
      .example('$0 replicator watch', 'as a systemd service (stops on SIGTERM)'),
  handler: async (args, io) =>
    withReplicator(args, io, async (ctx) => {
      ctx.log.info({ node: ctx.node.name, root: ctx.root }, 'replicator watching');
      await watch(ctx, { intervalSec: args.interval ?? 60, watchFiles: args.files !== false });
      return 0;
    }, { waitForDatabase: true }),
});

const scrubCmd = defineCommand<GlobalArgs & { 'older-than'?: number; 'budget-sec'?: number; rate?: number }>({
  command: 'scrub',
  describe: 're-verify this node\'s replicas at a bounded rate; corrupt or missing ones are reported and re-replicated',
  builder: (y) =>
    y
      .option('older-than', { type: 'number', describe: 'only replicas not verified for this many days (default: all)' })
      .option('budget-sec', { type: 'number', describe: 'stop after this many seconds' })
      .option('rate', { type: 'number', describe: 'read rate in MiB/s (default config replicator.scrubBytesPerSec)' })
      .example('0 3 * * * geogridfs replicator scrub -q --older-than 30 --budget-sec 10800', 'crontab: nightly, each replica about monthly'),
  handler: async (args, io) =>
    withReplicator(args, io, async (ctx) => {
      const s = await scrub(ctx, {
        ...(args['older-than'] !== undefined ? { olderThanSec: args['older-than'] * 86400 } : {}),
        ...(args['budget-sec'] !== undefined ? { budgetSec: args['budget-sec'] } : {}),
        ...(args.rate !== undefined ? { bytesPerSec: Math.round(args.rate * 2 ** 20) } : {}),
      });
      if (s.locked) return 0;
      const bad = s.corrupt + s.missing + s.errors;
      if (!args.quiet || bad) print(io, formatScrubSummary(s));
      if (bad) printErr(io, 'scrub: problems recorded (see `geogridfs status`); replicate restores lost copies');
      return bad ? 1 : 0;
    }),
});

export const replicatorCommand = defineCommand<GlobalArgs>({
  command: 'replicator <command>',
  describe: 'the storage node\'s replicator: walk, replicate, watch, scrub',
  builder: (y) => y.example('$0 replicator walk', '').example('$0 replicator replicate -q', ''),
  subcommands: [walkCmd, replicateCmd, watchCmd, scrubCmd],
});
