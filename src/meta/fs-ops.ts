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
 * EISDIR, EINVAL), like Node's own fs errors.
 */
import type { Queryable } from './store.js';
import { announce, ensureFolder, getFolder, getFile, nowUs, FILE_COLUMNS, FOLDER_COLUMNS, type FileRow, type FileVersion, type FolderRow } from './files.js';
import type { Classification } from '../util/classify.js';
import { parentOf, subtreeRange } from '../util/vpath.js';

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

/**
 * Create a folder. Missing ancestors (known only on the nodes) are created
 * too. EEXIST when a folder or live file holds the path.
 */
export async function makeFolder(db: Queryable, vpath: string, attrs: EntryAttrs): Promise<FolderRow> {
  if (await getFile(db, vpath)) throw new MetaFsError('EEXIST', `${vpath} exists`);
  const parent = await ensureFolder(db, parentOf(vpath));
  const now = nowUs();
  const rows = await db.query<FolderRow & Record<string, unknown>>(
    `INSERT INTO folders (path, parent_id, mode, uid, gid, mtime_us, ctime_us) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (path) DO NOTHING RETURNING ${FOLDER_COLUMNS}`,
    [vpath, parent.id, attrs.mode & 0o7777, attrs.uid, attrs.gid, attrs.mtimeUs ?? now, now],
  );
  if (!rows[0]) throw new MetaFsError('EEXIST', `${vpath} exists`);
  await announce(db, { paths: [vpath] });
  return rows[0];
}

/** Remove an empty folder. ENOTEMPTY when it has children; ENOENT when unknown (a no-op is not an error for the caller to decide). */
export async function removeFolder(db: Queryable, vpath: string): Promise<void> {
  if (vpath === '/') throw new MetaFsError('EBUSY', 'the root cannot be removed');
  const folder = await getFolder(db, vpath);
  if (!folder) throw new MetaFsError('ENOENT', `${vpath} is not a folder`);
  if (await folderHasChildren(db, folder.id)) throw new MetaFsError('ENOTEMPTY', `${vpath} is not empty`);
  await db.query('DELETE FROM folders WHERE id = $1', [folder.id]);
  await announce(db, { paths: [vpath] });
}

/**
 * Delete a live file or symlink: it becomes a tombstone; the replicas on
 * `handledNodeIds` (bytes already removed) are dropped, others stay as
 * pending deletes. Returns the row, or null when no live file has the path.
 */
export async function unlinkFile(db: Queryable, vpath: string, handledNodeIds: readonly number[], handledPaths?: readonly string[]): Promise<FileRow | null> {
  const rows = await db.query<FileRow & Record<string, unknown>>(
    `UPDATE files SET deleted_at = now(), folder_id = NULL, ctime_us = $2 WHERE path = $1 AND deleted_at IS NULL RETURNING ${FILE_COLUMNS}`,
    [vpath, nowUs()],
  );
  const file = rows[0];
  if (!file) return null;
  // only the copies the caller removed: a replica elsewhere on a handled node stays a pending delete
  await db.query(
    'DELETE FROM replicas r USING unnest($2::int[], $3::text[]) AS h(node_id, path) WHERE r.file_id = $1 AND r.node_id = h.node_id AND r.path = h.path',
    [file.id, handledNodeIds, handledPaths ?? handledNodeIds.map(() => vpath)],
  );
  await announce(db, { paths: [vpath] });
  return file;
}

/** Leave a tombstone at a file's old path pointing at the moved row. */
async function renameTombstones(db: Queryable, where: string, params: unknown[]): Promise<void> {
  await db.query(
    `INSERT INTO files (path, folder_id, kind, size, mode, uid, gid, atime_us, mtime_us, ctime_us, checksum, symlink_target,
                        class, replica_target, backup_target, version, deleted_at, renamed_to)
     SELECT path, NULL, kind, size, mode, uid, gid, atime_us, mtime_us, ctime_us, checksum, symlink_target,
            class, replica_target, backup_target, version, now(), id
       FROM files WHERE deleted_at IS NULL AND ${where}`,
    params,
  );
}

export interface RenameResult {
  kind: 'file' | 'folder';
  /** a live file that was replaced at the destination */
  replaced: FileRow | null;
}

/**
 * Rename a file, symlink or folder (with its whole subtree) in one
 * transaction, with POSIX overwrite rules: a file replaces a file; a folder
 * replaces an empty folder; EISDIR/ENOTDIR/ENOTEMPTY/EINVAL otherwise.
 * Tombstones are left at the old paths. Replica paths are moved for
 * `handledNodeIds` (renamed on those nodes); the others stay pending.
 * ENOENT when `from` is unknown to metadata.
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
  const srcFile = (await db.query<FileRow & Record<string, unknown>>(`SELECT ${FILE_COLUMNS} FROM files WHERE path = $1 AND deleted_at IS NULL FOR UPDATE`, [from]))[0] ?? null;
  const srcFolder = srcFile ? null : await getFolder(db, from);
  if (!srcFile && !srcFolder) throw new MetaFsError('ENOENT', `${from} is unknown`);
  const dstFile = await getFile(db, to);
  const dstFolder = dstFile ? null : await getFolder(db, to);
  const now = nowUs();
  let replaced: FileRow | null = null;

  if (srcFile) {
    if (dstFolder) throw new MetaFsError('EISDIR', `${to} is a folder`);
    if (dstFile) replaced = await unlinkFile(db, to, dstHandledNodeIds);
    const parent = await ensureFolder(db, parentOf(to));
    await renameTombstones(db, 'id = $1', [srcFile.id]);
    await db.query('UPDATE files SET path = $2, folder_id = $3, ctime_us = $4 WHERE id = $1', [srcFile.id, to, parent.id, now]);
    await db.query(
      'UPDATE replicas r SET path = $2 FROM unnest($3::int[], $4::text[]) AS h(node_id, path) WHERE r.file_id = $1 AND r.node_id = h.node_id AND r.path = h.path',
      [srcFile.id, to, handledNodeIds, handledPaths ?? handledNodeIds.map(() => from)],
    );
    await announce(db, { paths: [from, to] });
    return { kind: 'file', replaced };
  }

  // a folder and its subtree
  if (dstFile) throw new MetaFsError('ENOTDIR', `${to} is not a folder`);
  if (dstFolder) {
    if (await folderHasChildren(db, dstFolder.id)) throw new MetaFsError('ENOTEMPTY', `${to} is not empty`);
    await db.query('DELETE FROM folders WHERE id = $1', [dstFolder.id]);
  }
  const parent = await ensureFolder(db, parentOf(to));
  const [lo, hi] = subtreeRange(from);
  const cut = from.length + 1; // substr() is 1-based: keep the part after `from`
  await renameTombstones(db, 'path >= $1 AND path < $2', [lo, hi]);
  await db.query(
    `UPDATE replicas r SET path = $3 || substr(r.path, $4)
       FROM files f WHERE f.id = r.file_id AND f.deleted_at IS NULL AND f.path >= $1 AND f.path < $2
        AND r.node_id = ANY($5::int[]) AND r.path = f.path`,
    [lo, hi, to, cut, handledNodeIds],
  );
  await db.query(`UPDATE files SET path = $3 || substr(path, $4), ctime_us = $5 WHERE deleted_at IS NULL AND path >= $1 AND path < $2`, [lo, hi, to, cut, now]);
  await db.query(`UPDATE folders SET path = $3 || substr(path, $4) WHERE path >= $1 AND path < $2`, [lo, hi, to, cut]);
  await db.query('UPDATE folders SET path = $2, parent_id = $3, ctime_us = $4 WHERE id = $1', [srcFolder!.id, to, parent.id, now]);
  await announce(db, { subtrees: [from, to] });
  return { kind: 'folder', replaced: null };
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
  const now = nowUs();
  const params = [vpath, a.mode === undefined ? null : a.mode & 0o7777, a.uid ?? null, a.gid ?? null, a.mtimeUs ?? null, now];
  const files = await db.query(
    `UPDATE files SET mode = coalesce($2, mode), uid = coalesce($3, uid), gid = coalesce($4, gid),
            mtime_us = coalesce($5, mtime_us), atime_us = coalesce($7, atime_us), ctime_us = $6
      WHERE path = $1 AND deleted_at IS NULL RETURNING id`,
    [...params, a.atimeUs ?? null],
  );
  if (files.length === 0) {
    const folders = await db.query(
      `UPDATE folders SET mode = coalesce($2, mode), uid = coalesce($3, uid), gid = coalesce($4, gid),
              mtime_us = coalesce($5, mtime_us), ctime_us = $6 WHERE path = $1 RETURNING id`,
      params,
    );
    if (folders.length === 0) return false;
  }
  await announce(db, { paths: [vpath] });
  return true;
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
