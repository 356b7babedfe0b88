/**
 * Files, symlinks and folders of the virtual tree: lookups, listings, and the
 * core writes shared by the mount and the walk (register a file version,
 * create folders). Rename/unlink/etc. live beside these in the same module
 * family; every change bumps `seq` (by trigger) and announces the path on
 * NOTIFY channel `geogridfs_meta` at commit.
 */
import type { Queryable } from './store.js';
import type { Classification } from '../util/classify.js';
import { ancestorsOf, parentOf } from '../util/vpath.js';
import { GeoError } from '../util/errors.js';

export const META_CHANNEL = 'geogridfs_meta';

export interface FolderRow {
  id: number;
  path: string;
  parentId: number | null;
  mode: number;
  uid: number;
  gid: number;
  mtimeUs: number;
  ctimeUs: number;
  seq: number;
}

export interface FileRow {
  id: number;
  path: string;
  folderId: number | null;
  kind: 'file' | 'symlink';
  size: number;
  mode: number;
  uid: number;
  gid: number;
  atimeUs: number;
  mtimeUs: number;
  ctimeUs: number;
  checksum: string | null;
  symlinkTarget: string | null;
  class: string;
  replicaTarget: number;
  backupTarget: number;
  version: number;
  seq: number;
  deletedAt: Date | null;
}

export const FOLDER_COLUMNS = `id, path, parent_id AS "parentId", mode, uid, gid, mtime_us AS "mtimeUs", ctime_us AS "ctimeUs", seq`;
export const FILE_COLUMNS = `id, path, folder_id AS "folderId", kind, size, mode, uid, gid, atime_us AS "atimeUs",
  mtime_us AS "mtimeUs", ctime_us AS "ctimeUs", checksum, symlink_target AS "symlinkTarget", class,
  replica_target AS "replicaTarget", backup_target AS "backupTarget", version, seq, deleted_at AS "deletedAt"`;

/**
 * Times are stored as whole microseconds since the epoch (bigint columns
 * *_us): sub-second precision that still fits a JS number exactly
 * (nanoseconds since 1970 would not: 1.7e18 > 2^53).
 */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Invalidation message for caches: the paths changed, and folders whose whole subtree changed. */
export interface MetaChange {
  /** origin process id (a mount ignores its own echoes if it wants) */
  origin?: string;
  paths?: string[];
  subtrees?: string[];
}

/** Announce a change on META_CHANNEL (at commit when `db` is a transaction). */
export async function announce(db: Queryable, change: MetaChange): Promise<void> {
  const payload = JSON.stringify(change);
  if (payload.length < 7900) {
    await db.query('SELECT pg_notify($1, $2)', [META_CHANNEL, payload]);
    return;
  }
  // too large for one notification: announce the common parents as subtrees
  const parents = new Set<string>([...(change.subtrees ?? []), ...(change.paths ?? []).map(parentOf)]);
  await db.query('SELECT pg_notify($1, $2)', [META_CHANNEL, JSON.stringify({ origin: change.origin, subtrees: [...parents].slice(0, 50), paths: [] })]);
}

export async function getFolder(db: Queryable, vpath: string): Promise<FolderRow | null> {
  const rows = await db.query<FolderRow & Record<string, unknown>>(`SELECT ${FOLDER_COLUMNS} FROM folders WHERE path = $1`, [vpath]);
  return rows[0] ?? null;
}

export async function getFile(db: Queryable, vpath: string): Promise<FileRow | null> {
  const rows = await db.query<FileRow & Record<string, unknown>>(`SELECT ${FILE_COLUMNS} FROM files WHERE path = $1 AND deleted_at IS NULL`, [vpath]);
  return rows[0] ?? null;
}

export async function getFileById(db: Queryable, id: number): Promise<FileRow | null> {
  const rows = await db.query<FileRow & Record<string, unknown>>(`SELECT ${FILE_COLUMNS} FROM files WHERE id = $1`, [id]);
  return rows[0] ?? null;
}

export type Entry = { type: 'folder'; folder: FolderRow } | { type: 'file'; file: FileRow };

/** Look a path up as a folder or a live file (one round trip). */
export async function lookup(db: Queryable, vpath: string): Promise<Entry | null> {
  const rows = await db.query<{ t: string; j: FolderRow | FileRow } & Record<string, unknown>>(
    `SELECT 'folder' AS t, row_to_json(x) AS j FROM (SELECT ${FOLDER_COLUMNS} FROM folders WHERE path = $1) x
     UNION ALL
     SELECT 'file', row_to_json(y) FROM (SELECT ${FILE_COLUMNS} FROM files WHERE path = $1 AND deleted_at IS NULL) y`,
    [vpath],
  );
  const r = rows[0];
  if (!r) return null;
  return r.t === 'folder' ? { type: 'folder', folder: r.j as FolderRow } : { type: 'file', file: r.j as FileRow };
}

/**
 * lookup(), and for a file its replica rows too (as replicasOf gives them),
 * in the same round trip: the mount opens what it has just looked up.
 */
export async function lookupWithReplicas(db: Queryable, vpath: string): Promise<{ entry: Entry; replicas: ReplicaRow[] | null } | null> {
  const rows = await db.query<{ t: string; j: FolderRow | FileRow; r: ReplicaJson[] | null } & Record<string, unknown>>(
    `SELECT 'folder' AS t, row_to_json(x) AS j, NULL::json AS r FROM (SELECT ${FOLDER_COLUMNS} FROM folders WHERE path = $1) x
     UNION ALL
     SELECT 'file', row_to_json(y), ${replicasJson('y.id', 'y.version')}
       FROM (SELECT ${FILE_COLUMNS} FROM files WHERE path = $1 AND deleted_at IS NULL) y`,
    [vpath],
  );
  const r = rows[0];
  if (!r) return null;
  if (r.t === 'folder') return { entry: { type: 'folder', folder: r.j as FolderRow }, replicas: null };
  return { entry: { type: 'file', file: r.j as FileRow }, replicas: parseReplicas(r.r) };
}

/** Children of a folder: sub-folders and live files. */
export async function listFolder(db: Queryable, folderId: number): Promise<{ folders: FolderRow[]; files: FileRow[] }> {
  const [folders, files] = await Promise.all([
    db.query<FolderRow & Record<string, unknown>>(`SELECT ${FOLDER_COLUMNS} FROM folders WHERE parent_id = $1 ORDER BY path`, [folderId]),
    db.query<FileRow & Record<string, unknown>>(`SELECT ${FILE_COLUMNS} FROM files WHERE folder_id = $1 AND deleted_at IS NULL ORDER BY path`, [folderId]),
  ]);
  return { folders, files };
}

export interface FolderAttrs {
  mode?: number;
  uid?: number;
  gid?: number;
  mtimeUs?: number;
}

/**
 * Make sure a folder and all its ancestors exist in metadata (mkdir -p);
 * returns the folder. CONFLICT if a live file sits where a folder should be.
 * New folders take `attrs` (the leaf) or inherit owner/mode 0755 (ancestors).
 */
export async function ensureFolder(db: Queryable, vpath: string, attrs: FolderAttrs = {}): Promise<FolderRow> {
  const existing = await getFolder(db, vpath);
  if (existing) return existing;
  let parent = await getFolder(db, '/');
  for (const p of [...ancestorsOf(vpath), vpath]) {
    if (p === '/') continue;
    const leaf = p === vpath;
    const now = nowUs();
    const rows = await db.query<FolderRow & Record<string, unknown>>(
      `INSERT INTO folders (path, parent_id, mode, uid, gid, mtime_us, ctime_us)
       SELECT $1, $2, $3, $4, $5, $6, $7
        WHERE NOT EXISTS (SELECT 1 FROM files WHERE path = $1 AND deleted_at IS NULL)
       ON CONFLICT (path) DO NOTHING
       RETURNING ${FOLDER_COLUMNS}`,
      [p, parent!.id, leaf ? (attrs.mode ?? 0o755) : 0o755, leaf ? (attrs.uid ?? 0) : (attrs.uid ?? 0), leaf ? (attrs.gid ?? 0) : (attrs.gid ?? 0), leaf ? (attrs.mtimeUs ?? now) : now, now],
    );
    let row: FolderRow | null | undefined = rows[0];
    if (!row) {
      row = await getFolder(db, p);
      if (!row) throw new GeoError('CONFLICT', `a file exists where folder ${p} should be`);
    }
    parent = row;
  }
  return parent!;
}

export interface FileVersion {
  path: string;
  size: number;
  checksum: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeUs: number;
  atimeUs?: number;
  classification: Classification;
  /** the node whose bytes are this version */
  nodeId: number;
  /** where the bytes sit on that node (default: `path`) */
  nodePath?: string;
  /** only register if unknown; never bump an existing file (walk) */
  onlyIfNew?: boolean;
}

export interface CommitResult {
  file: FileRow;
  created: boolean;
  /** true when an existing file's content version was bumped */
  bumped: boolean;
}

/**
 * Register a new content version of a file in the caller's transaction:
 * creates the file (and its folders) if missing, else bumps `version` and
 * updates size/checksum/times; records `nodeId`'s replica as current. Other
 * replicas keep their old version (stale) for the replicator to overwrite.
 */
export async function commitFileVersion(db: Queryable, v: FileVersion): Promise<CommitResult> {
  const folder = await ensureFolder(db, parentOf(v.path), { uid: v.uid, gid: v.gid });
  const now = nowUs();
  const current = await db.query<FileRow & Record<string, unknown>>(`SELECT ${FILE_COLUMNS} FROM files WHERE path = $1 AND deleted_at IS NULL FOR UPDATE`, [v.path]);
  let file: FileRow;
  let created = false;
  let bumped = false;
  if (current[0]) {
    if (v.onlyIfNew) return { file: current[0], created: false, bumped: false };
    const rows = await db.query<FileRow & Record<string, unknown>>(
      `UPDATE files SET kind = 'file', symlink_target = NULL, size = $2, checksum = $3, mode = $4, uid = $5, gid = $6,
              mtime_us = $7, ctime_us = $8, atime_us = $9, version = version + 1,
              class = $10, replica_target = $11, backup_target = $12
        WHERE id = $1 RETURNING ${FILE_COLUMNS}`,
      [current[0].id, v.size, v.checksum, v.mode, v.uid, v.gid, v.mtimeUs, now, v.atimeUs ?? now, v.classification.class, v.classification.replicaTarget, v.classification.backupTarget],
    );
    file = rows[0]!;
    bumped = true;
  } else {
    if ((await getFolder(db, v.path)) !== null) throw new GeoError('CONFLICT', `a folder exists at ${v.path}`);
    const rows = await db.query<FileRow & Record<string, unknown>>(
      `INSERT INTO files (path, folder_id, kind, size, checksum, mode, uid, gid, atime_us, mtime_us, ctime_us, class, replica_target, backup_target)
       VALUES ($1, $2, 'file', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ${FILE_COLUMNS}`,
      [v.path, folder.id, v.size, v.checksum, v.mode, v.uid, v.gid, v.atimeUs ?? now, v.mtimeUs, now, v.classification.class, v.classification.replicaTarget, v.classification.backupTarget],
    );
    file = rows[0]!;
    created = true;
  }
  await db.query(
    `INSERT INTO replicas (file_id, node_id, version, path, verified_at) VALUES ($1, $2, $3, $4, now())
     ON CONFLICT (file_id, node_id) DO UPDATE SET version = EXCLUDED.version, path = EXCLUDED.path, verified_at = now()`,
    [file.id, v.nodeId, file.version, v.nodePath ?? v.path],
  );
  return { file, created, bumped };
}

/** Record that `nodeId` holds `version` of a file at `nodePath` (verified now). */
export async function recordReplica(db: Queryable, fileId: number, nodeId: number, version: number, nodePath: string): Promise<void> {
  await db.query(
    `INSERT INTO replicas (file_id, node_id, version, path, verified_at) VALUES ($1, $2, $3, $4, now())
     ON CONFLICT (file_id, node_id) DO UPDATE SET version = EXCLUDED.version, path = EXCLUDED.path, verified_at = now()`,
    [fileId, nodeId, version, nodePath],
  );
}

export interface ReplicaRow {
  fileId: number;
  nodeId: number;
  nodeName: string;
  nodeState: string;
  version: number;
  path: string;
  verifiedAt: Date | null;
}

type ReplicaJson = Omit<ReplicaRow, 'verifiedAt'> & { verifiedAt: string | null };

/**
 * The replica rows of file `fileId` (an SQL expression) as one JSON array,
 * current ones (version = `version`) first, then by node name: the one
 * statement fragment behind replicasOf and lookupWithReplicas.
 */
function replicasJson(fileId: string, version: string): string {
  return `(SELECT coalesce(json_agg(json_build_object('fileId', r.file_id, 'nodeId', r.node_id, 'nodeName', n.name, 'nodeState', n.state,
                                                     'version', r.version, 'path', r.path, 'verifiedAt', r.verified_at)
                                   ORDER BY (r.version = ${version}) DESC, n.name), '[]'::json)
             FROM replicas r JOIN nodes n ON n.id = r.node_id WHERE r.file_id = ${fileId})`;
}

function parseReplicas(rows: ReplicaJson[] | null): ReplicaRow[] {
  return (rows ?? []).map((x) => ({ ...x, verifiedAt: x.verifiedAt ? new Date(x.verifiedAt) : null }));
}

/** Replicas of a file with their node's name and state, current ones first. */
export async function replicasOf(db: Queryable, fileId: number): Promise<ReplicaRow[]> {
  const rows = await db.query<{ r: ReplicaJson[] } & Record<string, unknown>>(
    `SELECT ${replicasJson('f.id', 'f.version')} AS r FROM files f WHERE f.id = $1`,
    [fileId],
  );
  return parseReplicas(rows[0]?.r ?? null);
}
