/**
 * What every CLI command gets: its output streams and environment (so tests
 * run commands in-process), and helpers to load the config and open the
 * metadata store with the errors a user should see.
 */
import type { Writable } from 'node:stream';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { MetaStore, isConnectionError } from '../meta/store.js';
import { assertSchemaCurrent } from '../meta/migrate.js';
import { createLogger, type Logger } from '../util/log.js';
import { isGeoError } from '../util/errors.js';

export interface CliIo {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** set by long-running commands: resolves when they should stop (SIGINT/SIGTERM) */
  signal?: AbortSignal;
}

/** Arguments every command accepts. */
export interface GlobalArgs {
  config?: string | undefined;
  quiet?: boolean | undefined;
  verbose?: boolean | undefined;
  json?: boolean | undefined;
}

export function print(io: CliIo, text: string): void {
  io.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

export function printErr(io: CliIo, text: string): void {
  io.stderr.write(text.endsWith('\n') ? text : text + '\n');
}

export async function configFor(args: GlobalArgs, io: CliIo): Promise<Config> {
  return loadConfig({ configPath: args.config, env: io.env, cwd: io.cwd });
}

export function loggerFor(config: Config, args: GlobalArgs, io: CliIo, name: string): Logger {
  const level = args.quiet ? 'warn' : args.verbose ? 'debug' : config.log.level;
  return createLogger({ level, format: config.log.format, name, destination: io.stderr });
}

/**
 * Load config, open the store, check the schema is current, run `fn`, close.
 * `migrate: true` skips the schema check (for `db migrate` itself).
 */
export async function withStore<T>(
  args: GlobalArgs,
  io: CliIo,
  fn: (store: MetaStore, config: Config, log: Logger) => Promise<T>,
  opts: { checkSchema?: boolean; name?: string; poolSize?: number; waitForDatabase?: boolean } = {},
): Promise<T> {
  const config = await configFor(args, io);
  const log = loggerFor(config, args, io, opts.name ?? 'geogridfs');
  const open = () => MetaStore.open(config, { log, applicationName: `geogridfs-${opts.name ?? 'cli'}`, ...(opts.poolSize ? { poolSize: opts.poolSize } : {}) });
  let store: MetaStore;
  for (let attempt = 0; ; attempt++) {
    let opened: MetaStore | null = null;
    try {
      opened = await open();
      if (opts.checkSchema !== false) await assertSchemaCurrent(opened);
      store = opened;
      break;
    } catch (err) {
      await opened?.close().catch(() => undefined);
      // a daemon started before its database (boot order, a restart, a server shutting down) waits for it instead of exiting
      const down = (isGeoError(err) && err.code === 'DB_UNREACHABLE') || isConnectionError(err);
      if (!opts.waitForDatabase || !down || io.signal?.aborted) throw err;
      log.warn({ err: (err as Error).message }, 'database not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** attempt)));
    }
  }
  try {
    return await fn(store, config, log);
  } finally {
    await store.close();
  }
}

/** Human-readable byte count. */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** Render rows as an aligned text table. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? '').length)));
  const line = (cells: (string | number)[]) => cells.map((c, i) => String(c ?? '').padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
