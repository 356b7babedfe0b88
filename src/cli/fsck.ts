/**
 * `geogridfs fsck`: whole-grid check that metadata agrees with the bytes on
 * every node folder this host can reach. Exit 0 when clean, 1 otherwise.
 */
import { defineCommand } from './command.js';
import { print, printErr, withStore, type GlobalArgs } from './context.js';
import { fsck } from '../replicator/fsck.js';
import { upConfig } from './up.js';

export const fsckCommand = defineCommand<GlobalArgs & { checksums?: boolean; orphans?: boolean; record?: boolean; json?: boolean }>({
  command: 'fsck',
  describe: 'check metadata against the bytes on every reachable node (missing, wrong size, corrupt, under/over target, unknown files)',
  builder: (y) =>
    y
      .option('checksums', { type: 'boolean', describe: 're-hash every replica (slow: reads everything)' })
      .option('orphans', { type: 'boolean', describe: 'also walk each node folder for files metadata does not know' })
      .option('record', { type: 'boolean', describe: 'record the findings as problems (dashboard, status)' })
      .option('json', { type: 'boolean', describe: 'machine-readable report' })
      .example('$0 fsck', 'sizes and presence, fast')
      .example('$0 fsck --checksums --orphans', 'everything'),
  handler: async (args, io) =>
    withStore(args, io, async (store, loaded, log) => {
      // a grid made by `geogridfs up` has its node folders under dataDir/nodes
      const config = await upConfig(loaded);
      const findings: string[] = [];
      const report = await fsck(store, config, log, {
        checksums: args.checksums === true,
        orphans: args.orphans === true,
        record: args.record === true,
        ...(io.signal ? { signal: io.signal } : {}),
        onFinding: (f) => {
          if (!args.json) printErr(io, `${f.kind}\t${f.node ?? '-'}\t${f.path}\t${f.detail}`);
          else if (findings.length < 10_000) findings.push(JSON.stringify(f));
        },
      });
      if (args.json) print(io, JSON.stringify({ ...report, findingsList: findings.map((f) => JSON.parse(f) as unknown) }, null, 2));
      else {
        const f = report.findings;
        print(
          io,
          `fsck: ${report.files} files, ${report.replicasChecked} replicas checked${args.checksums ? ` (${(report.bytesHashed / 2 ** 20).toFixed(1)} MiB hashed)` : ''} in ${(report.elapsedMs / 1000).toFixed(1)}s: ` +
            `${f.missing} missing, ${f.size} wrong size, ${f.corrupt} corrupt, ${f.under} under target, ${f.over} over target, ${f.orphan} unknown files; ` +
            `${report.pendingNodeWork} pending deletes/renames` +
            (report.unreachableNodes.length ? `; not reachable from here: ${report.unreachableNodes.join(', ')}` : '') +
            (report.clean ? ' — clean' : ' — NOT clean'),
        );
      }
      return report.clean ? 0 : 1;
    }),
});
