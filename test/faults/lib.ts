/**
 * Shared machinery of the fault-tolerance suite (test/faults, test/regressions):
 * a real grid (node folders, test database, mounts from test/helpers/mount.ts),
 * per-node replicator configs, the API and a backup host as real processes,
 * a seeded PRNG, a model of the expected tree and the end-of-run checks.
 *
 * GEOGRIDFS_FAULTS=full (npm run test:faults) selects the full form: longer
 * soaks and more seeds. Every daemon started here is stopped at teardown
 * (SIGTERM, then SIGKILL), even when the test fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BIN, childEnv, cliProcess, type CliResult } from '../helpers/cli.js';
import { scratchDir, writeConfig } from '../helpers/db.js';
import { keepLog, makeGrid, sleep, type Grid } from '../helpers/mount.js';

export { sleep };
export const FULL = process.env.GEOGRIDFS_FAULTS === 'full';

interface Tap {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

/** Deterministic PRNG (mulberry32): same seed, same sequence of operations. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(arr: readonly T[]): T => arr[Math.floor(next() * arr.length)]!,
    chance: (p: number) => next() < p,
    bytes: (n: number) => {
      const b = Buffer.alloc(n);
      let i = 0;
      for (; i + 4 <= n; i += 4) b.writeUInt32LE((next() * 2 ** 32) >>> 0, i);
      for (; i < n; i++) b[i] = (next() * 256) | 0;
      return b;
    },
  };
}
export type Rng = ReturnType<typeof rng>;

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Seeds for this run: the short form takes `short`, the full form `full` (GEOGRIDFS_FAULTS_SEEDS=1,2,3 overrides). */
export function seeds(short: number[], full: number[]): number[] {
  const env = process.env.GEOGRIDFS_FAULTS_SEEDS;
  if (env) return env.split(',').map(Number);
  return FULL ? full : short;
}

/** One line of figures per test, collected in $TMPDIR/geogridfs-faults-figures.jsonl for the report. */
export function figures(t: Tap, name: string, data: Record<string, unknown>): void {
  t.comment(`figures ${name}: ${JSON.stringify(data)}`);
  try {
    appendFileSync(path.join(os.tmpdir(), 'geogridfs-faults-figures.jsonl'), JSON.stringify({ at: new Date().toISOString(), name, full: FULL, ...data }) + '\n');
  } catch {
    /* figures are a convenience */
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

// ------------------------------------------------------------------ daemons

export interface Daemon {
  name: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** SIGTERM, wait (bounded), SIGKILL */
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

/** Start `geogridfs ARGS` as a real process; stopped at teardown whatever happens. */
export function spawnDaemon(t: Tap, name: string, args: string[], env: NodeJS.ProcessEnv = {}): Daemon {
  const child = spawn(process.execPath, [BIN, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = keepLog(name, child.pid);
  const add = (d: Buffer) => {
    keep?.(d);
    out += d.toString();
    if (out.length > 256_000) out = out.slice(-128_000);
  };
  child.stdout!.on('data', add);
  child.stderr!.on('data', add);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    }),
  );
  const d: Daemon = {
    name,
    child,
    output: () => out,
    exited,
    alive: () => !done,
    stop: async () => {
      if (done) return;
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (!done) child.kill('SIGKILL');
      await exited;
    },
    kill9: async () => {
      if (done) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
  t.teardown(() => d.stop());
  return d;
}

/** Wait until `text` appears in a daemon's output (or it exits). */
export async function waitOutput(d: Daemon, text: string | RegExp, ms = 30_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const o = d.output();
    if (typeof text === 'string' ? o.includes(text) : text.test(o)) return true;
    if (!d.alive()) return false;
    await sleep(50);
  }
  return false;
}

/** Run a command every `everyMs` until stopped (a crontab, compressed); counts runs and failures. */
export function cronLoop(run: () => Promise<CliResult>, everyMs: number) {
  let stopped = false;
  const stats = { runs: 0, failures: 0, lastFailure: '', buildRaces: 0 };
  const loop = (async () => {
    while (!stopped) {
      let r = await run();
      for (let i = 0; i < 5 && /cannot load dist/.test(r.stderr + r.stdout); i++) {
        stats.buildRaces++;
        await sleep(1000);
        r = await run();
      }
      stats.runs++;
      if (r.code !== 0) {
        stats.failures++;
        stats.lastFailure = `${r.code}: ${r.stdout}${r.stderr}`.slice(-2000);
      }
      const until = Date.now() + everyMs;
      while (!stopped && Date.now() < until) await sleep(50);
    }
  })();
  return {
    stats,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

// ------------------------------------------------------------------ the grid

export interface FaultGridOptions {
  nodes?: number;
  replicaTarget?: number;
  backupTarget?: number;
  mount?: Record<string, unknown>;
  storage?: Record<string, unknown>;
  /** a node's folder as the mount sees it (e.g. a hangfs mount in front of it) */
  seenAs?: Record<string, string>;
  replicator?: Record<string, unknown>;
  /** a database URL of the test's own (default: a fresh database on the shared test server) */
  url?: string;
}

export interface FaultGrid extends Grid {
  classes: { name: string; pattern: string; replicaTarget: number; backupTarget: number }[];
  /** config.ts per node (host.node set) for its replicator */
  nodeConfigs: Record<string, string>;
  cli(args: string[], config?: string, timeoutMs?: number): Promise<CliResult>;
  replicate(node: string): Promise<CliResult>;
  fsck(extra?: string[]): Promise<CliResult>;
}

export async function faultGrid(t: Tap, opts: FaultGridOptions = {}): Promise<FaultGrid> {
  const classes = [{ name: 'default', pattern: '**', replicaTarget: opts.replicaTarget ?? 2, backupTarget: opts.backupTarget ?? 1 }];
  const replicator = { minFreeBytes: 0, concurrency: 3, budgetSec: 20, claimTtlSec: 10, ...(opts.replicator ?? {}) };
  const g = await makeGrid(t, {
    nodes: opts.nodes ?? 3,
    ...(opts.url ? { url: opts.url } : {}),
    config: { classes, replicator, mount: { ...(opts.mount ?? {}) }, storage: { ...(opts.storage ?? {}) } },
  });
  if (opts.seenAs) {
    // rewrite the mount's config so that it sees some nodes through another folder
    const seen = { ...g.nodes, ...opts.seenAs };
    const text = await fs.readFile(g.configFile, 'utf8');
    const body = JSON.parse(text.slice(text.indexOf('= ') + 2, text.lastIndexOf(';\nexport'))) as Record<string, unknown>;
    body.nodes = seen;
    await writeConfig(g.dir, body);
  }
  // each node folder carries its marker, as `geogridfs node add` / the README ask for a real node
  for (const [name, root] of Object.entries(g.nodes)) await fs.writeFile(path.join(root, '.ggfs-node'), `${name}\n`);
  const nodeConfigs: Record<string, string> = {};
  for (const name of Object.keys(g.nodes)) {
    const dir = path.join(g.dir, 'cfg', name);
    await fs.mkdir(dir, { recursive: true });
    nodeConfigs[name] = await writeConfig(dir, {
      dataDir: path.join(g.dir, 'data'),
      database: { url: g.url, poolSize: 4 },
      nodes: g.nodes,
      host: { node: name },
      classes,
      replicator,
      storage: { timeoutMs: 3000, suspectMs: 3000 },
      log: { level: process.env.GEOGRIDFS_TEST_LOG_LEVEL ?? 'info', format: 'json' },
    });
  }
  const cli = (args: string[], config = g.configFile, timeoutMs = 120_000) => cliProcess([...args, '-c', config], { cwd: g.dir, timeoutMs });
  return {
    ...g,
    classes,
    nodeConfigs,
    cli,
    replicate: (node) => cli(['replicator', 'replicate', '-q'], nodeConfigs[node]),
    fsck: (extra = []) => {
      // fsck sees the nodes directly (not through a test's hangfs)
      return cliProcess(['fsck', ...extra, '-c', nodeConfigs[Object.keys(g.nodes)[0]!]!], { cwd: g.dir, timeoutMs: 120_000 });
    },
  };
}

/** The API as a process, a registered backup node and a backup host config. */
export async function backupSetup(t: Tap, g: FaultGrid, name = 'offsite1') {
  const port = await freePort();
  const apiDir = path.join(g.dir, 'api');
  await fs.mkdir(apiDir, { recursive: true });
  const apiConfig = await writeConfig(apiDir, {
    dataDir: path.join(g.dir, 'data'),
    database: { url: g.url, poolSize: 4 },
    nodes: g.nodes,
    classes: g.classes,
    api: { port },
    storage: { timeoutMs: 3000 },
    log: { level: process.env.GEOGRIDFS_TEST_LOG_LEVEL ?? 'info', format: 'json' },
  });
  const add = await cliProcess(['backup-node', 'add', name, '-c', apiConfig]);
  if (add.code !== 0) throw new Error(`backup-node add failed: ${add.stderr}`);
  const token = /ggfs_[0-9a-f]+_[A-Za-z0-9_-]+/.exec(add.stdout)![0];
  const hostDir = await scratchDir('faults-host-');
  const folder = path.join(hostDir, 'backup');
  const hostConfig = await writeConfig(hostDir, {
    dataDir: path.join(hostDir, 'data'),
    backup: { apiUrls: [`http://127.0.0.1:${port}`], token, folder, minFreeBytes: 0, deletion: 'delete' },
    log: { level: process.env.GEOGRIDFS_TEST_LOG_LEVEL ?? 'info', format: 'json' },
  });
  const startApi = async () => {
    const api = spawnDaemon(t, 'api', ['api', '-c', apiConfig]);
    if (!(await waitOutput(api, 'listening'))) throw new Error(`api did not start: ${api.output()}`);
    return api;
  };
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    apiConfig,
    token,
    folder,
    hostConfig,
    startApi,
    replicate: () => cliProcess(['backup', 'replicate', '-q', '-c', hostConfig], { timeoutMs: 120_000 }),
  };
}

// ------------------------------------------------------------------ the model

/** The expected tree: files (virtual path -> bytes) and folders. */
export class Model {
  files = new Map<string, Buffer>();
  dirs = new Set<string>(['/']);
  /** paths whose last operation was interrupted by a fault: any of these states (null = absent) is acceptable, nothing else */
  uncertain = new Map<string, (Buffer | null)[]>();
  /** folders whose mkdir/rmdir was interrupted: may or may not exist */
  uncertainDirs = new Set<string>();
  /** what happened to each path (for failure reports) */
  history = new Map<string, string[]>();
  /** every operation that succeeded, in order: "time writer kind via paths" (for failure reports: see related) */
  trace: string[] = [];
  /** the trace lines naming a file or folder of `paths` (their own names, not the writers' roots) */
  related(paths: Iterable<string>, max = 120): string[] {
    const names = new Set<string>();
    for (const p of paths) for (const c of p.split('/')) if (c && !/^w\d+$/.test(c)) names.add(c.split(' ')[0]!); // "f1-2 with space ☕": f1-2 is unique
    const hit = (l: string) => l.split(/[ /]/).some((c) => names.has(c));
    return this.trace.filter(hit).slice(-max);
  }
  note(p: string, what: string): void {
    const h = this.history.get(p) ?? [];
    h.push(`${new Date().toISOString().slice(11, 23)} ${what}`);
    if (h.length > 12) h.shift();
    this.history.set(p, h);
  }

  childrenOf(dir: string): string[] {
    const pre = dir === '/' ? '/' : dir + '/';
    const out: string[] = [];
    for (const p of [...this.files.keys(), ...this.dirs]) if (p !== dir && p.startsWith(pre) && !p.slice(pre.length).includes('/')) out.push(p);
    return out;
  }
  filesUnder(dir: string): string[] {
    return [...this.files.keys()].filter((p) => p.startsWith(dir + '/'));
  }
  dirsUnder(dir: string): string[] {
    return [...this.dirs].filter((p) => p.startsWith(dir + '/'));
  }
  renameDir(from: string, to: string): void {
    for (const p of this.filesUnder(from)) {
      this.files.set(to + p.slice(from.length), this.files.get(p)!);
      this.files.delete(p);
    }
    for (const p of [...this.dirsUnder(from), from]) {
      this.dirs.delete(p);
      this.dirs.add(to + p.slice(from.length));
    }
  }
}

/** Every regular file and folder under a real folder (virtual paths), skipping `.geogridfs`. */
export async function scanTree(root: string): Promise<{ files: Map<string, string>; dirs: Set<string> }> {
  const files = new Map<string, string>();
  const dirs = new Set<string>(['/']);
  const visit = async (rel: string): Promise<void> => {
    for (const d of await fs.readdir(path.join(root, rel), { withFileTypes: true })) {
      if (rel === '' && d.name === '.geogridfs') continue;
      const v = `${rel}/${d.name}`;
      if (d.isDirectory()) {
        dirs.add(v);
        await visit(v);
      } else {
        // an unreadable file is a finding, not the end of the scan
        const content = await fs.readFile(path.join(root, v)).catch((e: NodeJS.ErrnoException) => `unreadable: ${e.code ?? e.message}`);
        files.set(v, typeof content === 'string' ? content : sha256(content));
      }
    }
  };
  await visit('');
  return { files, dirs };
}

export interface TreeCheck {
  missing: string[];
  wrong: string[];
  extra: string[];
  dirsMissing: string[];
  dirsExtra: string[];
  verified: number;
}

/** Compare a real folder (a mount or a backup folder) with the model. */
export async function compareTree(root: string, m: Model, opts: { dirs?: boolean } = {}): Promise<TreeCheck> {
  const got = await scanTree(root);
  const r: TreeCheck = { missing: [], wrong: [], extra: [], dirsMissing: [], dirsExtra: [], verified: 0 };
  for (const [p, b] of m.files) {
    const h = got.files.get(p);
    if (h === undefined) r.missing.push(p);
    else if (h !== sha256(b)) r.wrong.push(`${p}: want ${b.length} bytes sha ${sha256(b).slice(0, 10)}, got ${h.startsWith('unreadable') ? h : `sha ${h.slice(0, 10)}`}; history: ${(m.history.get(p) ?? []).join(' | ')}`);
    else r.verified++;
  }
  for (const [p, states] of m.uncertain) {
    const h = got.files.get(p);
    const ok = states.some((s) => (s === null ? h === undefined : h === sha256(s)));
    if (!ok) r.wrong.push(`${p} (interrupted: ${h === undefined ? 'absent' : 'content matches no state before or after'})`);
    else if (h !== undefined) r.verified++;
  }
  for (const p of got.files.keys()) if (!m.files.has(p) && !m.uncertain.has(p)) r.extra.push(p);
  if (opts.dirs !== false) {
    for (const d of m.dirs) if (!got.dirs.has(d) && !m.uncertainDirs.has(d)) r.dirsMissing.push(d);
    for (const d of got.dirs) if (!m.dirs.has(d) && !m.uncertainDirs.has(d)) r.dirsExtra.push(d);
  }
  return r;
}

/** After a fault: take what the tree shows for the uncertain paths as the model's truth (checked by compareTree first). */
export async function settleModel(root: string, m: Model): Promise<void> {
  const got = await scanTree(root);
  for (const [p, states] of m.uncertain) {
    const h = got.files.get(p);
    const s = states.find((x) => x !== null && sha256(x) === h);
    if (s) m.files.set(p, s);
  }
  m.uncertain.clear();
  for (const d of m.uncertainDirs) {
    if (got.dirs.has(d)) m.dirs.add(d);
    else m.dirs.delete(d);
  }
  m.uncertainDirs.clear();
}

export function treeOk(c: TreeCheck): boolean {
  return !c.missing.length && !c.wrong.length && !c.extra.length && !c.dirsMissing.length && !c.dirsExtra.length;
}

/** Live files below their replica target (counting only active/readonly nodes' current copies). */
export async function underTarget(g: Grid): Promise<{ path: string; target: number; copies: number }[]> {
  return g.store.query(
    `SELECT f.path, f.replica_target AS target,
            count(r.node_id) FILTER (WHERE r.version = f.version AND n.state IN ('active','readonly'))::int AS copies
       FROM files f LEFT JOIN replicas r ON r.file_id = f.id LEFT JOIN nodes n ON n.id = r.node_id
      WHERE f.deleted_at IS NULL AND f.kind = 'file'
      GROUP BY f.id HAVING count(r.node_id) FILTER (WHERE r.version = f.version AND n.state IN ('active','readonly')) < f.replica_target
      ORDER BY f.path`,
  );
}

/** Poll `check` until it returns true or the time is up. */
export async function until(check: () => Promise<boolean>, ms: number, every = 500): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await sleep(every);
  }
}

export { randomBytes };

/** Why files are under target: their queue entries and the open problems (for failure diagnostics). */
export async function whyUnder(g: Grid): Promise<{ queue: unknown[]; problems: unknown[]; replicas: unknown[] }> {
  const under = await underTarget(g);
  const paths = under.map((u) => u.path).slice(0, 20);
  const queue = await g.store.query(
    `SELECT f.path, q.reason, q.not_before > now() AS deferred FROM replication_queue q JOIN files f ON f.id = q.file_id WHERE f.path = ANY($1::text[])`,
    [paths],
  );
  const replicas = await g.store.query(
    `SELECT f.path, f.version AS "fileVersion", n.name AS node, r.version, r.path AS "nodePath" FROM files f JOIN replicas r ON r.file_id = f.id JOIN nodes n ON n.id = r.node_id
      WHERE f.deleted_at IS NULL AND f.path = ANY($1::text[]) ORDER BY f.path, n.name`,
    [paths],
  );
  const problems = await g.store.query(`SELECT kind, path, detail FROM problems WHERE resolved_at IS NULL ORDER BY id DESC LIMIT 30`).catch(async () =>
    g.store.query(`SELECT kind, path, detail FROM problems ORDER BY id DESC LIMIT 30`),
  );
  return { queue, problems, replicas };
}
