/**
 * `geogridfs mount MOUNTPOINT [-f] [-o allow_other,...]`
 *
 * Mounts the grid (every configured storage node, with the metadata store)
 * as one POSIX tree. In the background by default (the command returns once
 * the mount answers, logs go to <dataDir>/logs/); `-f` stays in the
 * foreground. SIGINT/SIGTERM or `fusermount -u MOUNTPOINT` unmount cleanly; a
 * stale mount left by a crashed process is cleared before mounting.
 *
 * The libuv thread pool must be sized (UV_THREADPOOL_SIZE =
 * storage.threadPoolSize) before the process does any I/O, which the module
 * loader already did: when it is not set as configured, the mount runs in a
 * child process started with it set.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv } from 'yargs';
import type { Config } from '../config/schema.js';
import { MetaStore } from '../meta/store.js';
import { assertSchemaCurrent } from '../meta/migrate.js';
import { GridFs } from '../fs/grid-fs.js';
import { journalFile } from '../fs/journal.js';
import { mountFuse, type Mounted } from '../fs/fuse-adapter.js';
import { GeoError, isGeoError } from '../util/errors.js';
import { LazyStore, type MetaAccess } from '../fs/meta-access.js';
import type { Logger } from '../util/log.js';
import { defineCommand } from './command.js';
import { configFor, loggerFor, print, printErr, type CliIo, type GlobalArgs } from './context.js';

const BIN = fileURLToPath(new URL('../../../bin/geogridfs', import.meta.url));

/** mount(8)-style options that mean nothing to FUSE here. */
const IGNORED_OPTIONS = new Set(['defaults', 'rw', 'auto', 'noauto', 'user', 'nouser', 'users', '_netdev', 'nofail', 'dev', 'nodev', 'suid', 'nosuid', 'exec', 'noexec', 'atime', 'noatime', 'relatime', 'async']);

export interface MountArgs extends GlobalArgs {
  mountpoint: string;
  foreground?: boolean;
  o?: string[] | string;
}

export interface ParsedOptions {
  allowOther?: boolean;
  placement?: Config['mount']['placement'];
  extra: string[];
}

/** Parse `-o a,b=c` lists: our own keys, mount(8) noise ignored, the rest passed to FUSE. */
export function parseMountOptions(list: string[] | string | undefined): ParsedOptions {
  const out: ParsedOptions = { extra: [] };
  const items = (Array.isArray(list) ? list : list ? [list] : []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    const [key, value] = item.includes('=') ? [item.slice(0, item.indexOf('=')), item.slice(item.indexOf('=') + 1)] : [item, undefined];
    if (key === 'allow_other') out.allowOther = true;
    else if (key === 'placement' && value) out.placement = value as ParsedOptions['placement'];
    else if (IGNORED_OPTIONS.has(key) || key.startsWith('x-') || key.startsWith('comment=')) continue;
    else if (key === 'default_permissions') continue; // always on
    else out.extra.push(item);
  }
  return out;
}

/** Config with the -o options applied. */
export function applyMountOptions(config: Config, o: ParsedOptions): Config {
  return {
    ...config,
    mount: { ...config.mount, ...(o.allowOther ? { allowOther: true } : {}), ...(o.placement ? { placement: o.placement } : {}) },
  };
}

export interface RunningMount {
  fs: GridFs;
  mounted: Mounted;
  store: MetaAccess;
  stop(): Promise<void>;
}

/**
 * Open the store, start the filesystem and mount it. The caller stops it
 * (`stop()`: unmount, register open writers, close the store).
 */
export async function startMount(config: Config, mountpoint: string, log: Logger, extra: string[] = [], store?: MetaStore): Promise<RunningMount> {
  const ownStore = !store;
  const open = () => MetaStore.open(config, { log, applicationName: 'geogridfs-mount', poolSize: Math.max(config.database.poolSize, 4) });
  let s: MetaAccess;
  if (store) s = store;
  else {
    try {
      s = await open();
    } catch (err) {
      if (!isGeoError(err, 'DB_UNREACHABLE')) throw err;
      // come up anyway: serve from the nodes, journal, connect when the database answers
      log.warn({ err: (err as Error).message }, 'PostgreSQL unreachable at mount time: mounting from the nodes; metadata changes are journaled');
      s = new LazyStore(async () => {
        const st = await open();
        try {
          await assertSchemaCurrent(st);
        } catch (e) {
          await st.close();
          throw e;
        }
        return st;
      });
    }
  }
  try {
    if (s instanceof MetaStore) await assertSchemaCurrent(s);
    const mnt = path.resolve(mountpoint);
    const origin = `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    const gridFs = new GridFs({ config, store: s, log, journalFile: journalFile(config.dataDir, mnt), origin });
    await gridFs.start();
    let mounted: Mounted;
    try {
      mounted = await mountFuse(gridFs, { mountpoint: mnt, allowOther: config.mount.allowOther, attrTimeoutSec: config.mount.attrTimeoutSec, opTimeoutSec: config.mount.opTimeoutSec, attrCacheEntries: config.mount.nativeAttrCache ? config.mount.cacheEntries : 0, extra }, log);
    } catch (err) {
      await gridFs.stop();
      throw err;
    }
    log.info({ mountpoint: mnt, nodes: gridFs.nodes.map((n) => n.name), placement: config.mount.placement, options: mounted.options, threadPool: process.env.UV_THREADPOOL_SIZE ?? '4' }, 'mounted');
    let stopped = false;
    return {
      fs: gridFs,
      mounted,
      store: s,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await mounted.unmount();
        await gridFs.stop();
        if (ownStore) await s.close();
        log.info({ mountpoint: mnt }, 'unmounted');
      },
    };
  } catch (err) {
    if (ownStore) await s.close();
    throw err;
  }
}

/** Wait until the signal aborts or the mount disappears. */
export function untilStopped(signal: AbortSignal | undefined, gone: Promise<void>): Promise<'signal' | 'gone'> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve('signal');
    signal?.addEventListener('abort', () => resolve('signal'), { once: true });
    void gone.then(() => resolve('gone'));
  });
}

/** True when this process's thread pool is sized as configured. */
/**
 * V8 flags of the mount process. Its heap is mostly long-lived (the
 * metadata cache); requests make small short-lived garbage. A 1 MiB young
 * generation (the default grows to 16 MiB per semi-space) keeps ~30 MB of
 * resident memory less, for scavenges that take well under a millisecond.
 */
export const MOUNT_V8_FLAGS = ['--max-semi-space-size=1'];

export function threadPoolReady(config: Config, env: NodeJS.ProcessEnv): boolean {
  return env.UV_THREADPOOL_SIZE === String(config.storage.threadPoolSize);
}

/**
 * Run `args` of this CLI again in a child process with UV_THREADPOOL_SIZE
 * set. Foreground: the child shares our terminal, our SIGINT/SIGTERM are
 * passed on, its exit code is returned. Background: the child is detached,
 * logs to `logFile`, and we return once it reports the mount ready.
 */
export async function rerunWithThreadPool(config: Config, args: string[], io: CliIo, opts: { background: boolean; logFile?: string }): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...io.env, UV_THREADPOOL_SIZE: String(config.storage.threadPoolSize), GEOGRIDFS_CHILD: '1' };
  delete env.NODE_OPTIONS;
  const node = [...process.execArgv, ...MOUNT_V8_FLAGS];
  if (!opts.background) {
    const child = spawn(process.execPath, [...node, BIN, ...args], { env, cwd: io.cwd, stdio: ['inherit', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => io.stdout.write(d));
    child.stderr.on('data', (d: Buffer) => io.stderr.write(d));
    const onAbort = () => child.kill('SIGTERM');
    const onStatus = () => child.kill('SIGUSR2'); // the status line is the mount's
    io.signal?.addEventListener('abort', onAbort, { once: true });
    process.on('SIGUSR2', onStatus);
    const code = await new Promise<number>((resolve) => child.on('close', (c, sig) => resolve(c ?? (sig ? 1 : 0))));
    io.signal?.removeEventListener('abort', onAbort);
    process.off('SIGUSR2', onStatus);
    return code;
  }
  await fsp.mkdir(path.dirname(opts.logFile!), { recursive: true });
  const out = fs.openSync(opts.logFile!, 'a');
  const child = spawn(process.execPath, [...node, BIN, ...args], { env: { ...env, GEOGRIDFS_READY_IPC: '1' }, cwd: io.cwd, stdio: ['ignore', out, out, 'ipc'], detached: true });
  fs.closeSync(out);
  const result = await new Promise<{ ok: boolean; message?: string }>((resolve) => {
    child.on('message', (m: { ready?: boolean; error?: string }) => resolve(m.ready ? { ok: true } : { ok: false, message: m.error ?? 'failed' }));
    child.on('exit', (code) => resolve({ ok: false, message: `exited with code ${code} (see ${opts.logFile})` }));
  });
  if (child.connected) child.disconnect();
  child.unref();
  if (!result.ok) {
    printErr(io, `geogridfs: mount failed: ${result.message}`);
    return 1;
  }
  print(io, `mounted in the background (pid ${child.pid}); log: ${opts.logFile}`);
  return 0;
}

/**
 * A mount process must not die on a stray error: the kernel would be left
 * with a dead mount (ENOTCONN) for every user of it. Log and keep serving.
 */
export function guardProcess(log: Logger): void {
  if (process.listenerCount('uncaughtException') > 0) return;
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception (kept running)'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection (kept running)'));
}

function tellParent(msg: { ready?: boolean; error?: string }): void {
  if (process.env.GEOGRIDFS_READY_IPC && process.send) {
    process.send(msg);
    process.disconnect?.();
  }
}

export const mountCommand = defineCommand<MountArgs>({
  command: 'mount <mountpoint>',
  describe: 'mount the grid as one POSIX tree (FUSE); fusermount -u MOUNTPOINT unmounts',
  builder: (y: Argv<GlobalArgs>) =>
    y
      .positional('mountpoint', { type: 'string', describe: 'folder to mount on (created if missing)' })
      .option('foreground', { alias: 'f', type: 'boolean', default: false, describe: 'stay in the foreground (Ctrl-C unmounts)' })
      .option('o', { type: 'string', array: true, describe: 'mount options: allow_other, placement=mfs|ff|lfs|rand|epff, and FUSE options' })
      .example('$0 mount /mnt/combined', 'mount in the background')
      .example('$0 mount -f -o allow_other /mnt/combined', 'in the foreground, usable by other users')
      .example('fusermount -u /mnt/combined', 'unmount') as unknown as Argv<GlobalArgs>,
  handler: async (args, io) => {
    const config0 = await configFor(args, io);
    const parsed = parseMountOptions(args.o);
    const config = applyMountOptions(config0, parsed);
    const mountpoint = path.resolve(io.cwd, args.mountpoint);
    if (Object.keys(config.nodes).length === 0) throw new GeoError('USAGE', 'no storage nodes configured: add them to `nodes` in config.ts (or try `geogridfs up`)');
    const background = !args.foreground && !io.env.GEOGRIDFS_CHILD;
    if (background || !threadPoolReady(config, io.env)) {
      const childArgs = ['mount', mountpoint, '--foreground'];
      if (config.configFile) childArgs.push('--config', config.configFile);
      if (args.quiet) childArgs.push('--quiet');
      if (args.verbose) childArgs.push('--verbose');
      for (const o of Array.isArray(args.o) ? args.o : args.o ? [args.o] : []) childArgs.push('-o', o);
      const id = createHash('sha256').update(mountpoint).digest('hex').slice(0, 12);
      return rerunWithThreadPool(config, childArgs, io, { background, logFile: path.join(config.dataDir, 'logs', `mount-${id}.log`) });
    }
    const log = loggerFor(config, args, io, 'mount');
    guardProcess(log);
    let running: RunningMount;
    try {
      running = await startMount(config, mountpoint, log, parsed.extra);
    } catch (err) {
      tellParent({ error: (err as Error).message });
      throw err;
    }
    tellParent({ ready: true });
    print(io, `geogridfs mounted at ${mountpoint} (${running.fs.nodes.length} nodes)`);
    // kill -USR2: one status line (memory, caches, node health) whatever the log level
    const statusLog = log.child({}, { level: 'info' });
    const onStatus = () => {
      const m = process.memoryUsage();
      const mb = (n: number) => +(n / 2 ** 20).toFixed(1);
      statusLog.info({ memoryMB: { rss: mb(m.rss), heapUsed: mb(m.heapUsed), heapTotal: mb(m.heapTotal), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers) }, ...running.fs.status() }, 'status');
    };
    process.on('SIGUSR2', onStatus);
    const why = await untilStopped(io.signal, running.mounted.gone);
    process.off('SIGUSR2', onStatus);
    log.info({ why }, 'stopping');
    await running.stop();
    return 0;
  },
});
