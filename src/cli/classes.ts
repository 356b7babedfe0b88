/**
 * `geogridfs classes list|apply`
 */
import { defineCommand } from './command.js';
import { configFor, print, table, withStore, type GlobalArgs } from './context.js';
import { applyClasses } from '../meta/classes.js';
import { makeClassifier } from '../util/classify.js';

const listCmd = defineCommand<GlobalArgs>({
  command: 'list',
  describe: 'show the configured classes in match order',
  builder: (y) => y.example('$0 classes list', ''),
  handler: async (args, io) => {
    const config = await configFor(args, io);
    print(io, table(['CLASS', 'PATTERN', 'REPLICAS', 'BACKUPS'], config.classes.map((c) => [c.name, c.pattern, c.replicaTarget, c.backupTarget])));
    return 0;
  },
});

const applyCmd = defineCommand<GlobalArgs & { 'dry-run'?: boolean }>({
  command: 'apply',
  describe: 're-classify existing files after the patterns or targets in config.ts changed',
  builder: (y) => y.option('dry-run', { type: 'boolean', describe: 'count what would change, change nothing' }).example('$0 classes apply', 'raised targets get more copies at the next replicate'),
  handler: async (args, io) =>
    withStore(args, io, async (store, config) => {
      const tty = io.stderr.isTTY === true;
      const r = await applyClasses(store, makeClassifier(config.classes), {
        dryRun: args['dry-run'] === true,
        onProgress: (p) => {
          if (tty) io.stderr.write(`\rscanned ${p.scanned}, ${p.changed} to change`);
        },
      });
      if (tty) io.stderr.write('\n');
      const per = Object.entries(r.byClass).map(([c, n]) => `${c}: ${n}`).join(', ');
      print(io, `${args['dry-run'] ? 'would change' : 'changed'} ${r.changed} of ${r.scanned} file(s)${per ? ` (${per})` : ''}`);
      return 0;
    }),
});

export const classesCommand = defineCommand<GlobalArgs>({
  command: 'classes <command>',
  describe: 'file classes (replica and backup targets by path pattern)',
  builder: (y) => y.example('$0 classes apply', ''),
  subcommands: [listCmd, applyCmd],
});
