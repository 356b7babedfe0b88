/**
 * `geogridfs backup replicate` and `geogridfs backup walk -p PATH` — the
 * off-site backup agent. It talks only to the central API (backup.apiUrls,
 * backup.token), never to the database.
 */
import { mkdir } from 'node:fs/promises';
import { defineCommand } from './command.js';
import { configFor, formatBytes, loggerFor, print, printErr, type CliIo, type GlobalArgs } from './context.js';
import type { Config } from '../config/schema.js';
import { ApiClient } from '../backup/api-client.js';
import { Replicator, type ReplicateSummary } from '../backup/replicate.js';
import { walkBackup, type WalkSummary } from '../backup/walk.js';
import { GeoError, isGeoError } from '../util/errors.js';

function backupSettings(config: Config): { urls: string[]; token: string; folder: string } {
  const missing: string[] = [];
  if (!config.backup.apiUrls.length) missing.push('backup.apiUrls: give at least one API URL');
  if (!config.backup.token) missing.push('backup.token: the token printed by `geogridfs backup-node add NAME`');
  if (!config.backup.folder) missing.push('backup.folder: where the backups are kept');
  if (missing.length) throw new GeoError('CONFIG_INVALID', `${config.configFile ?? '(defaults)'}: the backup agent needs\n  ${missing.join('\n  ')}`);
  return { urls: config.backup.apiUrls, token: config.backup.token!, folder: config.backup.folder! };
}

function progressLine(io: CliIo, text: string): void {
  if (io.stderr.isTTY) io.stderr.write(`\r\x1b[K${text}`);
}

function rate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : '-';
}

export function replicateLine(s: ReplicateSummary): string {
  return (
    `backup: ${s.downloaded} downloaded (${formatBytes(s.bytes)}, ${rate(s.bytes, s.seconds)}${s.resumed ? `, ${s.resumed} resumed` : ''}), ` +
    `${s.renamed} renamed, ${s.deleted} deleted, ${s.unchanged + s.adopted} already here, ${s.keptAside} kept aside, ${s.superseded ? `${s.superseded} changed meanwhile, ` : ''}${s.failed} failed; ` +
    `${s.held} reported held; cursor ${s.cursorBefore} -> ${s.cursorAfter} in ${s.seconds.toFixed(2)} s` + (s.stoppedBy ? `; stopped: ${s.stoppedBy}` : '')
  );
}

async function withClient<T>(args: GlobalArgs, io: CliIo, fn: (client: ApiClient, config: Config, folder: string, log: ReturnType<typeof loggerFor>) => Promise<T>): Promise<T> {
  const config = await configFor(args, io);
  const { urls, token, folder } = backupSettings(config);
  const log = loggerFor(config, args, io, 'backup');
  await mkdir(folder, { recursive: true });
  const client = new ApiClient({ urls, token, caFile: config.backup.caFile, maxSockets: config.backup.concurrency + 2, log, signal: io.signal });
  try {
    return await fn(client, config, folder, log);
  } catch (err) {
    if (isGeoError(err)) throw err;
    // API unreachable after retries, refused token, disk errors...: one clear line, not a stack
    const e = err as Error & { code?: string; status?: number };
    throw new GeoError('IO', `backup: ${e.message}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''} — nothing past the last finished file was recorded; the next run continues from there`);
  } finally {
    client.close();
  }
}

const replicateCmd = defineCommand<GlobalArgs>({
  command: 'replicate',
  describe: 'pull what changed since the last run (cron hourly: 0 * * * * geogridfs backup replicate -q)',
  builder: (y) => y.example('$0 backup replicate', 'with progress on a terminal').example('$0 backup replicate -q', 'from cron: one summary line'),
  handler: async (args, io) =>
    withClient(args, io, async (client, config, folder, log) => {
      const r = new Replicator({
        client,
        folder,
        deletion: config.backup.deletion,
        concurrency: config.backup.concurrency,
        minFreeBytes: config.backup.minFreeBytes,
        log,
        signal: io.signal,
        onProgress: (s) => progressLine(io, `${s.items} items, ${s.downloaded} downloaded, ${formatBytes(s.bytes)}, ${s.failed} failed`),
      });
      let summary: ReplicateSummary;
      try {
        summary = await r.run();
      } catch (err) {
        if (isGeoError(err, 'LOCKED')) {
          printErr(io, `geogridfs: ${err.message}; exiting`);
          return 0; // overlapping cron runs are normal: the other run does the work
        }
        throw err;
      }
      progressLine(io, '');
      print(io, replicateLine(summary));
      return summary.failed > 0 || (summary.stoppedBy !== null && !summary.stoppedBy.startsWith('throttled') && !summary.stoppedBy.startsWith('free-space')) ? 1 : 0;
    }),
});

const walkCmd = defineCommand<GlobalArgs & { path?: string }>({
  command: 'walk',
  describe: 'register files already present in the backup folder (hash, compare with the server, report held/mismatched)',
  builder: (y) =>
    y
      .option('path', { alias: 'p', type: 'string', describe: 'folder to walk (the backup folder or inside it; default backup.folder)' })
      .example('$0 backup walk -p /srv/backup', 'once, on a host that already holds a copy'),
  handler: async (args, io) =>
    withClient(args, io, async (client, config, folder, log) => {
      const s: WalkSummary = await walkBackup({
        client,
        folder,
        root: args.path ?? folder,
        concurrency: config.backup.concurrency,
        log,
        signal: io.signal,
        onProgress: (p) => progressLine(io, `${p.folders} folders, ${p.files} files, ${formatBytes(p.hashedBytes)} hashed`),
      });
      progressLine(io, '');
      print(io, `walk: ${s.files} files in ${s.folders} folders: ${s.matched} match the grid, ${s.skipped} already known, ${s.mismatched} differ, ${s.unknown} unknown to the grid; ${s.held} reported held; ${formatBytes(s.hashedBytes)} hashed in ${s.seconds.toFixed(1)} s`);
      return 0;
    }),
});

export const backupCommand = defineCommand<GlobalArgs>({
  command: 'backup <command>',
  describe: 'off-site backup agent: replicate (cron hourly), walk (once, for existing copies)',
  builder: (y) => y.example('$0 backup replicate -q', ''),
  subcommands: [replicateCmd, walkCmd],
});
