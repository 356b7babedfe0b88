/**
 * The metadata side of the mount's namespace operations: mkdir, rmdir,
 * unlink, rename (files and whole subtrees), setattr, symlink. Each function
 * runs in the caller's transaction (`store.txn`) and announces what changed
 * on `geogridfs_meta` (delivered at commit).
 *
 * Nodes that were unreachable: the caller passes `handledNodeIds`, the nodes
 * on which it applied the change to the bytes. Replica rows of other nodes
 * are left as they were, which is how their replicator learns of the work:
 * a replica row whose file is a tombstone is a pending delete; a replica row
 * whose path differs from its file's path is a pending rename.
 *
 * Errors carry an errno name in `code` (ENOENT, EEXIST, ENOTEMPTY, ENOTDIR,
 * EISDIR, EINVAL, EBUSY), like Node's own fs errors.
 *
 * makeFolder, removeFolder, unlinkFile, renamePath and setAttributes are each
 * ONE statement (a function of sql/0003_fs_functions.sql): one round trip,
 * atomic on its own. The *Fast variants run one of them outside any
 * transaction (no BEGIN/COMMIT round trips), retrying deadlocks and
 * serialization failures as store.txn() would.
 */
import type { Queryable } from './store.js';
import { announce, ensureFolder, getFolder, getFile, nowUs, FILE_COLUMNS, FOLDER_COLUMNS, META_CHANNEL, type FileRow, type FileVersion, type FolderRow, type MetaChange } from './files.js';
import { GeoError } from '../util/errors.js';
import type { Classification } from '../util/classify.js';
import { parentOf } from '../util/vpath.js';

export type MetaErrno = 'ENOENT' | 'EEXIST' | 'ENOTEMPTY' | 'ENOTDIR' | 'EISDIR' | 'EINVAL' | 'EBUSY';

export class MetaFsError extends Error {
  readonly code: MetaErrno;
  constructor(code: MetaErrno, message: string) {
    super(message);
    this.name = 'MetaFsError';
    this.code = code;
  }
}

export interface EntryAttrs {
  mode: number;
  uid: number;
  gid: number;
  mtimeUs?: number;
}

/** True when a folder has a sub-folder or a live file. */
export async function folderHasChildren(db: Queryable, folderId: number): Promise<boolean> {
  const rows = await db.query<{ x: number }>(
    `SELECT 1 AS x FROM folders WHERE parent_id = $1
     UNION ALL SELECT 1 FROM files WHERE folder_id = $1 AND deleted_at IS NULL LIMIT 1`,
    [folderId],
  );
  return rows.length > 0;
}

/** SQLSTATE of the errors raised by the functions of sql/0003 (errno name in `hint`). */
const FS_ERROR_STATE = 'GGFS1';
const ERRNOS = new Set<string>(['ENOENT', 'EEXIST', 'ENOTEMPTY', 'ENOTDIR', 'EISDIR', 'EINVAL', 'EBUSY']);

/** The error a function of sql/0003 raised, as the TypeScript versions threw it: MetaFsError, or GeoError CONFLICT. */
function fsError(err: unknown): unknown {
  const e = err as { code?: string; hint?: string; message?: string } | null;
  if (!e || e.code !== FS_ERROR_STATE) return err;
  if (e.hint === 'CONFLICT') return new GeoError('CONFLICT', e.message ?? 'conflict', { cause: err });
  if (e.hint && ERRNOS.has(e.hint)) return new MetaFsError(e.hint as MetaErrno, e.message ?? e.hint);
  return err;
}

async function call<T extends Record<string, unknown>>(db: Queryable, sql: string, params: unknown[]): Promise<T[]> {
  try {
    return await db.query<T>(sql, params);
  } catch (err) {
    throw fsError(err);
  }
}

/** The NOTIFY payload announce() would send for `change` (a large one names the common parents instead). */
function payloadOf(change: MetaChange): string {
  const payload = JSON.stringify(change);
  if (payload.length < 7900) return payload;
  const parents = new Set<string>([...(change.subtrees ?? []), ...(change.paths ?? []).map(parentOf)]);
  return JSON.stringify({ origin: change.origin, subtrees: [...parents].slice(0, 50), paths: [] });
}

/**
 * Create a folder. Missing ancestors (known only on the nodes) are created
 * too. EEXIST when a folder or live file holds the path; GeoError CONFLICT
 * when a live file holds an ancestor's path.
 */
export async function makeFolder(db: Queryable, vpath: string, attrs: EntryAttrs): Promise<FolderRow> {
  const rows = await call<FolderRow & Record<string, unknown>>(
    db,
    `SELECT ${FOLDER_COLUMNS} FROM geogridfs_make_folder($1, $2, $3, $4, $5, $6, $7, $8)`,
    [vpath, attrs.mode & 0o7777, attrs.uid, attrs.gid, attrs.mtimeUs ?? null, nowUs(), META_CHANNEL, payloadOf({ paths: [vpath] })],
  );
  return rows[0]!;
}

/** Remove an empty folder. ENOTEMPTY when it has children; ENOENT when unknown (a no-op is not an error for the caller to decide); EBUSY for the root. */
export async function removeFolder(db: Queryable, vpath: string): Promise<void> {
  if (vpath === '/') throw new MetaFsError('EBUSY', 'the root cannot be removed');
  await call(db, 'SELECT geogridfs_remove_folder($1, $2, $3)', [vpath, META_CHANNEL, payloadOf({ paths: [vpath] })]);
}

/**
 * Delete a live file or symlink: it becomes a tombstone; the replicas on
 * `handledNodeIds` at `handledPaths` (bytes already removed there; default
 * `vpath` on each) are dropped, others stay as pending deletes. Returns the
 * row, or null when no live file has the path.
 */
export async function unlinkFile(db: Queryable, vpath: string, handledNodeIds: readonly number[], handledPaths?: readonly string[]): Promise<FileRow | null> {
  const rows = await call<FileRow & Record<string, unknown>>(
    db,
    `SELECT ${FILE_COLUMNS} FROM geogridfs_unlink_file($1, $2::int[], $3::text[], $4, $5, $6)`,
    [vpath, handledNodeIds, handledPaths ?? handledNodeIds.map(() => vpath), nowUs(), META_CHANNEL, payloadOf({ paths: [vpath] })],
  );
  return rows[0] ?? null;
}

export interface RenameResult {
  kind: 'file' | 'folder';
  /** a live file that was replaced at the destination */
  replaced: FileRow | null;
}

/**
 * Rename a file, symlink or folder (with its whole subtree) in one
 * statement, with POSIX overwrite rules: a file replaces a file; a folder
 * replaces an empty folder; EISDIR/ENOTDIR/ENOTEMPTY/EINVAL otherwise, EBUSY
 * for the root. Tombstones are left at the old paths. Replica paths are
 * moved for `handledNodeIds` (renamed on those nodes); the others stay
 * pending. For a folder, every replica row under it on a handled node moves
 * (the node renamed the folder with whatever it held, pending renames and
 * deletes included). ENOENT when `from` is unknown to metadata.
 */
export async function renamePath(
  db: Queryable,
  from: string,
  to: string,
  handledNodeIds: readonly number[],
  dstHandledNodeIds: readonly number[] = handledNodeIds,
  /** per handled node, the node path it moved (default `from`); a replica elsewhere stays a pending rename */
  handledPaths?: readonly string[],
): Promise<RenameResult> {
  if (from === '/' || to === '/') throw new MetaFsError('EBUSY', 'the root cannot be renamed');
  if (to.startsWith(from + '/')) throw new MetaFsError('EINVAL', `cannot move ${from} into itself`);
  const rows = await call<{ renameKind: 'file' | 'folder'; id: number | null } & Record<string, unknown>>(
    db,
    `SELECT x.o_kind AS "renameKind", y.*
       FROM geogridfs_rename($1, $2, $3::int[], $4::text[], $5::int[], $6, $7, $8, $9, $10) x
       LEFT JOIN LATERAL (SELECT ${FILE_COLUMNS} FROM (SELECT (x.o_replaced).*) z WHERE z.id IS NOT NULL) y ON true`,
    [
      from,
      to,
      handledNodeIds,
      handledPaths ?? handledNodeIds.map(() => from),
      dstHandledNodeIds,
      nowUs(),
      META_CHANNEL,
      payloadOf({ paths: [from, to] }),
      payloadOf({ subtrees: [from, to] }),
      payloadOf({ paths: [to] }),
    ],
  );
  const { renameKind, ...replaced } = rows[0]!;
  return { kind: renameKind, replaced: replaced.id === null ? null : (replaced as unknown as FileRow) };
}

export interface SetAttrs {
  mode?: number;
  uid?: number;
  gid?: number;
  atimeUs?: number;
  mtimeUs?: number;
}

/** Change mode/owner/times of a live file or a folder. Returns false when metadata does not know the path. */
export async function setAttributes(db: Queryable, vpath: string, a: SetAttrs): Promise<boolean> {
  const rows = await call<{ ok: boolean }>(db, 'SELECT geogridfs_set_attributes($1, $2, $3, $4, $5, $6, $7, $8, $9) AS ok', [
    vpath,
    a.mode === undefined ? null : a.mode & 0o7777,
    a.uid ?? null,
    a.gid ?? null,
    a.mtimeUs ?? null,
    a.atimeUs ?? null,
    nowUs(),
    META_CHANNEL,
    payloadOf({ paths: [vpath] }),
  ]);
  return rows[0]!.ok;
}

/** SQLSTATEs after which a statement is retried whole (as store.txn() retries a transaction). */
const RETRYABLE = new Set(['40001', '40P01']);

/** Run one single-statement operation outside a transaction, retrying deadlocks and serialization failures with bounded, jittered backoff. */
async function alone<T>(fn: () => Promise<T>, attempts = 8): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: string } | null)?.code;
      if (!code || !RETRYABLE.has(code) || attempt >= attempts) throw err;
      await new Promise((r) => setTimeout(r, Math.min(1000, 5 * 2 ** attempt) * (0.5 + Math.random())));
    }
  }
}

/*
 * The mount's hot path for namespace changes: the same operations run on the
 * store itself (pass the MetaStore, not a transaction), one round trip each,
 * atomic on their own, with the same results and errors.
 */

/** makeFolder in one round trip, outside any transaction. */
export function makeFolderFast(store: Queryable, vpath: string, attrs: EntryAttrs): Promise<FolderRow> {
  return alone(() => makeFolder(store, vpath, attrs));
}

/** removeFolder in one round trip, outside any transaction. */
export function removeFolderFast(store: Queryable, vpath: string): Promise<void> {
  return alone(() => removeFolder(store, vpath));
}

/** unlinkFile in one round trip, outside any transaction. */
export function unlinkFileFast(store: Queryable, vpath: string, handledNodeIds: readonly number[], handledPaths?: readonly string[]): Promise<FileRow | null> {
  return alone(() => unlinkFile(store, vpath, handledNodeIds, handledPaths));
}

/** renamePath in one round trip, outside any transaction. */
export function renamePathFast(
  store: Queryable,
  from: string,
  to: string,
  handledNodeIds: readonly number[],
  dstHandledNodeIds: readonly number[] = handledNodeIds,
  handledPaths?: readonly string[],
): Promise<RenameResult> {
  return alone(() => renamePath(store, from, to, handledNodeIds, dstHandledNodeIds, handledPaths));
}

/** setAttributes in one round trip, outside any transaction. */
export function setAttributesFast(store: Queryable, vpath: string, a: SetAttrs): Promise<boolean> {
  return alone(() => setAttributes(store, vpath, a));
}

/** Create a symlink entry. EEXIST when the path is taken. */
export async function makeSymlink(db: Queryable, vpath: string, target: string, attrs: EntryAttrs, classification: Classification): Promise<FileRow> {
  if ((await getFile(db, vpath)) || (await getFolder(db, vpath))) throw new MetaFsError('EEXIST', `${vpath} exists`);
  const parent = await ensureFolder(db, parentOf(vpath));
  const now = nowUs();
  const rows = await db.query<FileRow & Record<string, unknown>>(
    `INSERT INTO files (path, folder_id, kind, size, mode, uid, gid, atime_us, mtime_us, ctime_us, symlink_target, class, replica_target, backup_target)
     VALUES ($1, $2, 'symlink', $3, 511, $4, $5, $6, $6, $6, $7, $8, $9, $10) RETURNING ${FILE_COLUMNS}`,
    [vpath, parent.id, Buffer.byteLength(target), attrs.uid, attrs.gid, now, target, classification.class, classification.replicaTarget, classification.backupTarget],
  );
  await announce(db, { paths: [vpath] });
  return rows[0]!;
}

/**
 * Of `paths` seen on the given nodes but absent from the live tree, those
 * that metadata knows as replicas (pending deletes or renames): they must not
 * be shown as hand-placed files.
 */
export async function knownReplicaPaths(db: Queryable, nodeIds: readonly number[], paths: readonly string[]): Promise<Set<string>> {
  if (paths.length === 0 || nodeIds.length === 0) return new Set();
  const rows = await db.query<{ path: string }>('SELECT DISTINCT path FROM replicas WHERE node_id = ANY($1::int[]) AND path = ANY($2::text[])', [nodeIds, paths]);
  return new Set(rows.map((r) => r.path));
}

/**
 * The nodes (of `nodeIds`) where a replica row of a file other than
 * `exceptFileIds` names `path`: bytes still to be moved or deleted there by
 * that node's replicator (a pending rename or delete), which a rename onto
 * the path must not overwrite.
 */
export async function nodesHoldingOthersAt(db: Queryable, nodeIds: readonly number[], path: string, exceptFileIds: readonly number[]): Promise<Set<number>> {
  if (nodeIds.length === 0) return new Set();
  const rows = await db.query<{ node_id: number }>(
    'SELECT DISTINCT node_id FROM replicas WHERE node_id = ANY($1::int[]) AND path = $2 AND file_id <> ALL($3::bigint[])',
    [nodeIds, path, exceptFileIds],
  );
  return new Set(rows.map((r) => r.node_id));
}

/**
 * The mount's hot path: register a file version in ONE statement (one round
 * trip, its own transaction) with the same effect as commitFileVersion
 * followed by announce: insert or bump the live row, this node's replica
 * current, other replicas left stale, NOTIFY at commit. Returns null when
 * the slow path must decide (parent folder unknown to metadata, a folder at
 * the path, or a concurrent insert of the same path).
 */
export async function commitVersionFast(db: Queryable, v: FileVersion, channel: string, payload: string): Promise<FileRow | null> {
  const now = nowUs();
  let rows: (FileRow & Record<string, unknown>)[];
  try {
    rows = await db.query<FileRow & Record<string, unknown>>(
      `WITH parent AS (SELECT id FROM folders WHERE path = $2),
       cur AS (SELECT id FROM files WHERE path = $1 AND deleted_at IS NULL FOR UPDATE),
       upd AS (
         UPDATE files SET kind = 'file', symlink_target = NULL, size = $3, checksum = $4, mode = $5, uid = $6, gid = $7,
                mtime_us = $8, ctime_us = $9, atime_us = $10, version = version + 1, class = $11, replica_target = $12, backup_target = $13
          WHERE id = (SELECT id FROM cur) RETURNING ${FILE_COLUMNS}),
       ins AS (
         INSERT INTO files (path, folder_id, kind, size, checksum, mode, uid, gid, atime_us, mtime_us, ctime_us, class, replica_target, backup_target)
         SELECT $1, parent.id, 'file', $3, $4, $5, $6, $7, $10, $8, $9, $11, $12, $13 FROM parent
          WHERE NOT EXISTS (SELECT 1 FROM cur) AND NOT EXISTS (SELECT 1 FROM folders WHERE path = $1)
         RETURNING ${FILE_COLUMNS}),
       f AS (SELECT * FROM upd UNION ALL SELECT * FROM ins),
       rep AS (
         INSERT INTO replicas (file_id, node_id, version, path, verified_at) SELECT f.id, $14, f.version, $15, now() FROM f
         ON CONFLICT (file_id, node_id) DO UPDATE SET version = EXCLUDED.version, path = EXCLUDED.path, verified_at = now())
       SELECT f.*, pg_notify($16, $17) AS notified FROM f`,
      [v.path, parentOf(v.path), v.size, v.checksum, v.mode, v.uid, v.gid, v.mtimeUs, now, v.atimeUs ?? now, v.classification.class, v.classification.replicaTarget, v.classification.backupTarget, v.nodeId, v.nodePath ?? v.path, channel, payload],
    );
  } catch (err) {
    if ((err as { code?: string }).code === '23505') return null; // created meanwhile by someone else: the slow path updates it
    throw err;
  }
  const row = rows[0];
  if (!row) return null;
  delete (row as Record<string, unknown>).notified;
  return row;
}
