/**
 * The namespace operations as they were before sql/0003 (one statement per
 * step, run from TypeScript in the caller's transaction), kept as the
 * reference the one-statement versions must match (fs-ops-equivalence.test).
 * Copied from src/meta/fs-ops.ts at 1df2502; the folder rename's replica
 * update follows sql/0006.
 */
import type { Queryable } from '../../src/meta/store.js';
import { announce, ensureFolder, getFolder, getFile, nowUs, FILE_COLUMNS, FOLDER_COLUMNS, type FileRow, type FolderRow } from '../../src/meta/files.js';
import { MetaFsError, type EntryAttrs, type RenameResult, type SetAttrs } from '../../src/meta/fs-ops.js';
import { parentOf, subtreeRange } from '../../src/util/vpath.js';

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
    // since sql/0006: every row under the folder on a handled node (pending renames and deletes too)
    `UPDATE replicas r SET path = $3 || substr(r.path, $4) WHERE r.node_id = ANY($5::int[]) AND r.path >= $1 AND r.path < $2`,
    [lo, hi, to, cut, handledNodeIds],
  );
  await db.query(`UPDATE files SET path = $3 || substr(path, $4), ctime_us = $5 WHERE deleted_at IS NULL AND path >= $1 AND path < $2`, [lo, hi, to, cut, now]);
  await db.query(`UPDATE folders SET path = $3 || substr(path, $4) WHERE path >= $1 AND path < $2`, [lo, hi, to, cut]);
  await db.query('UPDATE folders SET path = $2, parent_id = $3, ctime_us = $4 WHERE id = $1', [srcFolder!.id, to, parent.id, now]);
  await announce(db, { subtrees: [from, to] });
  return { kind: 'folder', replaced: null };
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

