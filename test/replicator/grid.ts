/**
 * A small grid for replicator tests: a fresh migrated database on the shared
 * test server, N node folders in a scratch dir, one config file per node
 * (host.node set), every node registered. Real files, real PostgreSQL.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile, lstat } from 'node:fs/promises';
import path from 'node:path';
import type { Test } from 'tap';
import { createTestDatabase, scratchDir, writeConfig } from '../helpers/db.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { MetaStore } from '../../src/meta/store.js';
import { migrate } from '../../src/meta/migrate.js';
import { ensureNodes } from '../../src/meta/nodes.js';
import { loadConfig } from '../../src/config/load.js';
import { openReplicator, type ReplicatorContext, type ReplicatorHooks } from '../../src/replicator/context.js';
import { silentLogger } from '../../src/util/log.js';

interface Tap {
  teardown(fn: () => unknown): void;
}

export interface Grid {
  url: string;
  store: MetaStore;
  dir: string;
  roots: Record<string, string>;
  configs: Record<string, string>;
  /** run `geogridfs <args> -c <node's config>` in-process */
  run(node: string, args: string[]): Promise<CliResult>;
  nodeId(name: string): Promise<number>;
}

export interface GridOptions {
  nodes?: string[];
  classes?: { name: string; pattern: string; replicaTarget: number; backupTarget: number }[];
  replicator?: Record<string, unknown>;
}

export async function makeGrid(t: Tap, opts: GridOptions = {}): Promise<Grid> {
  const names = opts.nodes ?? ['n1', 'n2', 'n3'];
  const url = await createTestDatabase(t);
  const store = await MetaStore.connect(url, { poolSize: 4 });
  t.teardown(() => store.close());
  await migrate(store);
  await ensureNodes(store, names);
  const dir = await scratchDir('repl-');
  const roots: Record<string, string> = {};
  for (const n of names) {
    roots[n] = path.join(dir, 'nodes', n);
    await mkdir(roots[n]!, { recursive: true });
  }
  const configs: Record<string, string> = {};
  for (const n of names) {
    const cdir = path.join(dir, 'cfg', n);
    await mkdir(cdir, { recursive: true });
    configs[n] = await writeConfig(cdir, {
      dataDir: path.join(dir, 'data'),
      database: { url },
      nodes: roots,
      host: { node: n },
      classes: opts.classes ?? [{ name: 'default', pattern: '**', replicaTarget: 2, backupTarget: 0 }],
      replicator: { minFreeBytes: 0, concurrency: 3, ...(opts.replicator ?? {}) },
      log: { level: 'warn', format: 'json' },
    });
  }
  return {
    url,
    store,
    dir,
    roots,
    configs,
    run: (node, args) => cli([...args, '-c', configs[node]!], { cwd: dir }),
    nodeId: async (name) => (await store.query<{ id: number }>('SELECT id FROM nodes WHERE name = $1', [name]))[0]!.id,
  };
}

export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Write files (path relative to root -> content) under a node root. */
export async function writeTree(root: string, files: Record<string, Buffer | string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
  }
}

/** Every regular file under a root: relative path -> sha256 (reserved names included, so leftovers show). */
export async function listTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const visit = async (dir: string, rel: string): Promise<void> => {
    for (const ent of await readdir(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (r === '.ggfs-node') continue; // the node marker
      if (ent.isDirectory()) await visit(path.join(dir, ent.name), r);
      else if (ent.isFile()) out['/' + r] = sha256(await readFile(path.join(dir, ent.name)));
    }
  };
  await visit(root, '');
  return out;
}

export async function fileExists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/** A sample tree: nested folders, empty files, a larger file, names with spaces and unicode. */
export function sampleTree(bigBytes = 3 * 2 ** 20): Record<string, Buffer | string> {
  return {
    'a.txt': 'alpha\n',
    'empty': '',
    'dir one/b c.txt': 'bee see\n',
    'dir one/nested/deeper/d.bin': randomBytes(70_000),
    'dir one/nested/empty too': '',
    'фото/café ☕.jpg': randomBytes(12_345),
    'big/large.bin': randomBytes(bigBytes),
    'many/f1': '1',
    'many/f2': '2',
    'many/f3': '3',
  };
}

export interface ReplicaState {
  path: string;
  target: number;
  nodes: string[];
}

/** Current replicas per live file (node names, sorted). */
export async function replicaState(store: MetaStore): Promise<ReplicaState[]> {
  return store.query<ReplicaState & Record<string, unknown>>(
    `SELECT f.path, f.replica_target AS target,
            coalesce(array_agg(n.name ORDER BY n.name) FILTER (WHERE r.version = f.version AND n.state IN ('active', 'readonly')), '{}') AS nodes
       FROM files f LEFT JOIN replicas r ON r.file_id = f.id LEFT JOIN nodes n ON n.id = r.node_id
      WHERE f.deleted_at IS NULL AND f.kind = 'file' GROUP BY f.id ORDER BY f.path`,
  );
}

/** Run replicate on every node at once, round after round, until a round changes nothing. */
export async function settle(g: Grid, nodes: string[], extra: string[] = [], maxRounds = 8): Promise<number> {
  for (let round = 1; round <= maxRounds; round++) {
    const results = await Promise.all(nodes.map((n) => g.run(n, ['replicator', 'replicate', ...extra])));
    for (const r of results) if (r.code !== 0) throw new Error(`replicate failed: ${r.stdout}${r.stderr}`);
    const moved = results.some((r) => !/0 copied .* 0 removed, 0 deletes and 0 renames applied/.test(r.stdout));
    const queued = (await g.store.query<{ n: number }>('SELECT count(*)::int AS n FROM replication_queue WHERE not_before <= now()'))[0]!.n;
    if (!moved && queued === 0) return round;
  }
  throw new Error('replication did not settle');
}

/** Every node folder holds exactly its replicas, with the right bytes, and no leftovers. */
export async function assertDisksMatchMetadata(t: Test, g: Grid): Promise<void> {
  const rows = await g.store.query<{ node: string; path: string; checksum: string }>(
    `SELECT n.name AS node, r.path, f.checksum FROM replicas r JOIN files f ON f.id = r.file_id JOIN nodes n ON n.id = r.node_id
      WHERE f.deleted_at IS NULL AND r.version = f.version ORDER BY 1, 2`,
  );
  for (const [name, root] of Object.entries(g.roots)) {
    const want = Object.fromEntries(rows.filter((r) => r.node === name).map((r) => [r.path, r.checksum]));
    t.same(await listTree(root), want, `${name} holds exactly its replicas, intact, no temp files`);
  }
}



/** An in-process replicator of `node` (its own config, quiet), closed at the test's end; `hooks` to stage races. */
export async function replicatorFor(t: Tap, g: Grid, node: string, hooks?: ReplicatorHooks): Promise<ReplicatorContext> {
  const config = await loadConfig({ configPath: g.configs[node]!, cwd: g.dir, env: process.env });
  const ctx = await openReplicator(g.store, config, silentLogger);
  if (hooks) ctx.hooks = hooks;
  t.teardown(() => ctx.pool.close());
  return ctx;
}
