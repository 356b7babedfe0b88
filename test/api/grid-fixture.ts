/**
 * A small real grid for API and backup tests: a migrated database (real
 * PostgreSQL), node folders holding real files registered with
 * commitFileVersion, a real API server on loopback, a backup node and its
 * token. Renames and deletes are done in metadata the way the schema
 * describes them (tombstones; renamed_to on rename tombstones).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile, cp } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { testStore, scratchDir } from '../helpers/db.js';
import { validateConfig } from '../../src/config/load.js';
import type { Config, ConfigInput } from '../../src/config/schema.js';
import type { MetaStore } from '../../src/meta/store.js';
import { ensureNodes, type NodeRow } from '../../src/meta/nodes.js';
import { commitFileVersion, recordReplica, ensureFolder, getFile } from '../../src/meta/files.js';
import { addBackupNode, type BackupNodeRow } from '../../src/meta/backup-nodes.js';
import { buildApiServer, type ApiServer } from '../../src/api/server.js';
import { createLogger } from '../../src/util/log.js';
import { parentOf } from '../../src/util/vpath.js';

interface Tap {
  teardown(fn: () => unknown): void;
}

export interface Grid {
  store: MetaStore;
  dbUrl: string;
  dir: string;
  config: Config;
  nodes: Record<string, string>;
  nodeRows: NodeRow[];
  server: ApiServer;
  base: string;
  token: string;
  backupNode: BackupNodeRow;
  /** everything the API logged (pino JSON lines, debug level) */
  logText(): string;
  /** write a file to the given nodes (default all) and register that version */
  putFile(vpath: string, content: Buffer | string, opts?: { nodes?: string[]; mtimeUs?: number; mode?: number }): Promise<{ id: number; version: number; checksum: string }>;
  deleteFile(vpath: string): Promise<void>;
  /** rename in metadata only (bytes stay at the old path on the nodes, as replicas.path says) */
  renameFile(from: string, to: string): Promise<void>;
  /** fetch with the backup token */
  get(pathAndQuery: string, headers?: Record<string, string>): Promise<Response>;
}

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export interface GridOptions {
  nodes?: string[];
  config?: Partial<ConfigInput>;
  backupNode?: string;
  /** where the API server sees each node (default: the node folders themselves), e.g. a FUSE mount in front of one */
  serveNodes?: (nodes: Record<string, string>, dir: string) => Promise<Record<string, string>>;
}

export async function makeGrid(t: Tap, opts: GridOptions = {}): Promise<Grid> {
  const { store, url } = await testStore(t);
  const dir = await scratchDir('grid-');
  const names = opts.nodes ?? ['n1', 'n2'];
  const nodes: Record<string, string> = {};
  for (const n of names) {
    nodes[n] = path.join(dir, 'nodes', n);
    await mkdir(nodes[n]!, { recursive: true });
  }
  const nodeRows = await ensureNodes(store, names);
  const nodeId = (n: string) => nodeRows.find((r) => r.name === n)!.id;
  const served = opts.serveNodes ? await opts.serveNodes(nodes, dir) : nodes;
  const config = validateConfig({ dataDir: path.join(dir, 'data'), database: { url }, nodes: served, storage: { timeoutMs: 2000 }, ...(opts.config ?? {}) }, '(test)');
  let logged = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logged += chunk.toString();
      cb();
    },
  });
  const log = createLogger({ level: 'debug', format: 'json', destination: sink });
  const server = await buildApiServer({ store, config, log });
  const base = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const { node: backupNode, token } = await addBackupNode(store, opts.backupNode ?? 'offsite1');

  const putFile: Grid['putFile'] = async (vpath, content, o = {}) => {
    const buf = Buffer.isBuffer(content) ? content : Buffer.from(content);
    const on = o.nodes ?? names;
    for (const n of on) {
      const p = path.join(nodes[n]!, vpath);
      await mkdir(path.dirname(p), { recursive: true });
      await writeFile(p, buf);
    }
    const checksum = sha256(buf);
    const file = await store.txn(async (tx) => {
      const r = await commitFileVersion(tx, {
        path: vpath,
        size: buf.length,
        checksum,
        mode: o.mode ?? 0o644,
        uid: 0,
        gid: 0,
        mtimeUs: o.mtimeUs ?? 1_700_000_000_123_456,
        classification: { class: 'default', replicaTarget: 2, backupTarget: 1 },
        nodeId: nodeId(on[0]!),
      });
      for (const n of on.slice(1)) await recordReplica(tx, r.file.id, nodeId(n), r.file.version, vpath);
      return r.file;
    });
    return { id: file.id, version: file.version, checksum };
  };

  const deleteFile: Grid['deleteFile'] = async (vpath) => {
    const rows = await store.query(`UPDATE files SET deleted_at = now(), folder_id = NULL WHERE path = $1 AND deleted_at IS NULL RETURNING id`, [vpath]);
    if (rows.length !== 1) throw new Error(`no live file ${vpath}`);
  };

  const renameFile: Grid['renameFile'] = async (from, to) => {
    await store.txn(async (tx) => {
      const f = await getFile(tx, from);
      if (!f) throw new Error(`no live file ${from}`);
      const folder = await ensureFolder(tx, parentOf(to));
      await tx.query(
        `INSERT INTO files (path, folder_id, kind, size, mode, uid, gid, atime_us, mtime_us, ctime_us, checksum, symlink_target, class,
                            replica_target, backup_target, version, deleted_at, renamed_to)
         SELECT path, NULL, kind, size, mode, uid, gid, atime_us, mtime_us, ctime_us, checksum, symlink_target, class,
                replica_target, backup_target, version, now(), id FROM files WHERE id = $1`,
        [f.id],
      );
      await tx.query('UPDATE files SET path = $2, folder_id = $3 WHERE id = $1', [f.id, to, folder.id]);
    });
  };

  const get: Grid['get'] = (pq, headers = {}) => fetch(base + pq, { headers: { authorization: `Bearer ${token}`, ...headers } });

  return { store, dbUrl: url, dir, config, nodes, nodeRows, server, base, token, backupNode, logText: () => logged, putFile, deleteFile, renameFile, get };
}

/** Copy a node folder as the expected tree (helper for diff -r). */
export async function copyTree(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true, preserveTimestamps: true });
}

export { writeFile };
