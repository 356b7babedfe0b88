/**
 * A real grid for mount tests: node folders in scratch dirs, a test database
 * (or a given URL), a config.ts, registered nodes, and `geogridfs mount -f`
 * processes (real FUSE). Teardown always unmounts (fusermount -uz) so that
 * a failing test never leaves a stale mount behind.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createTestDatabase, scratchDir, writeConfig } from './db.js';
import { BIN, childEnv } from './cli.js';
import { MetaStore } from '../../src/meta/store.js';
import { migrate } from '../../src/meta/migrate.js';
import { ensureNodes } from '../../src/meta/nodes.js';

interface Tap {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, maxBuffer: 64 * 2 ** 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

export interface Grid {
  dir: string;
  url: string;
  store: MetaStore;
  nodes: Record<string, string>;
  configFile: string;
  /** mount the grid at `mnt` (default: a new folder); resolves once it answers */
  mount(mnt?: string, extraArgs?: string[]): Promise<MountProc>;
}

export interface MountProc {
  mountpoint: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM and wait for a clean exit; returns the exit code */
  stop(): Promise<number | null>;
}

export interface GridOptions {
  nodes?: number;
  url?: string;
  /** extra config keys (merged shallowly per section) */
  config?: Record<string, unknown>;
  threadPoolSize?: number;
}

/**
 * With GEOGRIDFS_TEST_LOGS=DIR, a child's whole output is also appended to
 * DIR/<name>-<pid>.log (for reading after a failure; tests keep only a tail).
 */
export function keepLog(name: string, pid: number | undefined): ((d: Buffer) => void) | null {
  const dir = process.env.GEOGRIDFS_TEST_LOGS;
  if (!dir) return null;
  const file = path.join(dir, `${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}-${pid ?? 0}.log`);
  let chain: Promise<unknown> = fs.mkdir(dir, { recursive: true }).catch(() => undefined);
  return (d: Buffer) => {
    chain = chain.then(() => fs.appendFile(file, d)).catch(() => undefined);
  };
}

function fusermountU(mnt: string): Promise<void> {
  return new Promise((resolve) => execFile('fusermount', ['-uz', mnt], () => resolve()));
}

export async function startMountProcess(t: Tap, configFile: string, mnt: string, threadPool: number, extraArgs: string[] = []): Promise<MountProc> {
  await fs.mkdir(mnt, { recursive: true }).catch(() => undefined); // ENOTCONN on a stale mount: the mount clears it
  // UV_THREADPOOL_SIZE as configured: the mount serves in this very process (no re-exec), so kill -9 hits it
  const child = spawn(process.execPath, [BIN, 'mount', '-f', mnt, '--config', configFile, ...extraArgs], {
    env: childEnv({ UV_THREADPOOL_SIZE: String(threadPool) }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = keepLog(`mount-${path.basename(mnt)}`, child.pid);
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    keep?.(d);
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
    keep?.(d);
  });
  let exited = false;
  const exit = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      exited = true;
      resolve(code);
    }),
  );
  t.teardown(async () => {
    if (exited) t.comment(`mount process had exited before teardown; its output:\n${out.slice(-4000)}`);
    if (!exited) {
      child.kill('SIGTERM');
      await Promise.race([exit, sleep(10_000)]);
      if (!exited) child.kill('SIGKILL');
    }
    await fusermountU(mnt);
  });
  for (let i = 0; i < 300; i++) {
    if (out.includes('geogridfs mounted at')) break;
    if (exited) throw new Error(`mount exited early:\n${out}`);
    await sleep(100);
  }
  if (!out.includes('geogridfs mounted at')) throw new Error(`mount did not come up:\n${out}`);
  return {
    mountpoint: mnt,
    child,
    output: () => out,
    stop: async () => {
      if (!exited) child.kill('SIGTERM');
      return exit;
    },
  };
}

/** A grid of `nodes` folders on a fresh test database, with its config file. */
export async function makeGrid(t: Tap, opts: GridOptions = {}): Promise<Grid> {
  const dir = await scratchDir('grid-');
  const url = opts.url ?? (await createTestDatabase(t));
  const store = await MetaStore.connect(url, { poolSize: 3 });
  t.teardown(() => store.close());
  await migrate(store);
  const nodes: Record<string, string> = {};
  for (let i = 1; i <= (opts.nodes ?? 3); i++) {
    const p = path.join(dir, 'nodes', `n${i}`);
    await fs.mkdir(p, { recursive: true });
    nodes[`n${i}`] = p;
  }
  await ensureNodes(store, Object.keys(nodes));
  const threadPool = opts.threadPoolSize ?? 16;
  const extra = opts.config ?? {};
  const section = (k: string) => ({ ...((extra[k] as Record<string, unknown>) ?? {}) });
  const configFile = await writeConfig(dir, {
    dataDir: path.join(dir, 'data'),
    database: { url, poolSize: 4, ...section('database') },
    nodes,
    mount: { attrTimeoutSec: 1, ...section('mount') },
    storage: { timeoutMs: 3000, suspectMs: 3000, perNodeConcurrency: 4, threadPoolSize: threadPool, ...section('storage') },
    log: { level: process.env.GEOGRIDFS_TEST_LOG_LEVEL ?? 'info', format: 'json' },
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => !['database', 'mount', 'storage'].includes(k))),
  });
  let n = 0;
  return {
    dir,
    url,
    store,
    nodes,
    configFile,
    mount: (mnt?: string, extraArgs: string[] = []) => startMountProcess(t, configFile, mnt ?? path.join(dir, `mnt${n++}`), threadPool, extraArgs),
  };
}

/** Files under a folder (relative paths), recursively. */
export async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const d of await fs.readdir(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) await walk(r);
      else out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

/**
 * A grid whose mount is GridFs in-process (no FUSE), for tests that need
 * to hold a node call or run the recovery at a chosen moment. With
 * `ownPostgres`, a PostgreSQL server of its own (embedded, own data folder)
 * that the test may stop and start; `dataDir` says where.
 */
export async function inProcessGrid(t: Tap, opts: { nodes: number; ownPostgres?: string }) {
  const { scratchDir } = await import('./db.js');
  const { ensureEmbedded, stopEmbedded } = await import('../../src/embedded/server.js');
  const { loadConfig } = await import('../../src/config/load.js');
  const { GridFs } = await import('../../src/fs/grid-fs.js');
  const { journalFile } = await import('../../src/fs/journal.js');
  const { silentLogger } = await import('../../src/util/log.js');
  let dataDir: string | null = null;
  let url: string | undefined;
  if (opts.ownPostgres) {
    const dir = await scratchDir(opts.ownPostgres);
    dataDir = dir;
    url = (await ensureEmbedded(dir)).url;
    t.teardown(() => stopEmbedded(dir));
  }
  const g = await makeGrid(t, { nodes: opts.nodes, ...(url ? { url } : {}) });
  const config = await loadConfig({ configPath: g.configFile });
  const store = await MetaStore.connect(g.url, { poolSize: 4, statementTimeoutMs: 5000 });
  t.teardown(() => store.close());
  const gfs = new GridFs({ config, store, log: silentLogger, journalFile: journalFile(config.dataDir, path.join(g.dir, 'mnt')), origin: 'regression' });
  await gfs.start();
  t.teardown(() => gfs.stop());
  return { g, config, store, gfs, dataDir: dataDir! };
}
