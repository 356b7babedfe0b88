/**
 * Replica bookkeeping for the replicator: what a node folder's files are in
 * metadata (walk), batch replica writes, scrub order, safe removal of a
 * node's replica, and the node list as placement sees it.
 */
import type { Queryable, TxnRunner } from './store.js';

/** Metadata about one local path of a node (walk). */
export interface LocalPathInfo {
  path: string;
  /** live file at this path, if any */
  fileId: number | null;
  kind: 'file' | 'symlink' | null;
  size: number | null;
  mtimeUs: number | null;
  checksum: string | null;
  version: number | null;
  /** this node's replica of that live file: its version and node path */
  replicaVersion: number | null;
  replicaPath: string | null;
  /** this node holds, at this path, a replica of another (deleted or renamed) file */
  otherReplica: boolean;
  /** a checksum an earlier walk computed for this path (mismatch), with the size/mtime it had */
  cachedSize: number | null;
  cachedMtimeUs: number | null;
  cachedChecksum: string | null;
}

/** Look up a batch of a node's local paths (one round trip, index lookups only). */
export async function localPathInfo(db: Queryable, nodeId: number, paths: readonly string[]): Promise<Map<string, LocalPathInfo>> {
  const rows = await db.query<LocalPathInfo & Record<string, unknown>>(
    `SELECT p.path, f.id AS "fileId", f.kind, f.size, f.mtime_us AS "mtimeUs", f.checksum, f.version,
            r.version AS "replicaVersion", r.path AS "replicaPath",
            EXISTS (SELECT 1 FROM replicas o WHERE o.node_id = $1 AND o.path = p.path COLLATE "C" AND o.file_id IS DISTINCT FROM f.id) AS "otherReplica",
            w.size AS "cachedSize", w.mtime_us AS "cachedMtimeUs", w.checksum AS "cachedChecksum"
       FROM unnest($2::text[]) AS p(path)
       LEFT JOIN files f ON f.path = p.path COLLATE "C" AND f.deleted_at IS NULL
       LEFT JOIN replicas r ON r.file_id = f.id AND r.node_id = $1
       LEFT JOIN walk_hashes w ON w.node_id = $1 AND w.path = p.path COLLATE "C"`,
    [nodeId, paths],
  );
  return new Map(rows.map((r) => [r.path, r]));
}

export interface ReplicaWrite {
  fileId: number;
  nodeId: number;
  version: number;
  path: string;
}

/** Record (or refresh) replicas in one statement, verified now. */
export async function addReplicas(db: Queryable, rows: readonly ReplicaWrite[]): Promise<void> {
  if (!rows.length) return;
  await db.query(
    `INSERT INTO replicas (file_id, node_id, version, path, verified_at)
     SELECT u.f, u.n, u.v, u.p, now() FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[]) AS u(f, n, v, p)
     ON CONFLICT (file_id, node_id) DO UPDATE SET version = EXCLUDED.version, path = EXCLUDED.path, verified_at = now()`,
    [rows.map((r) => r.fileId), rows.map((r) => r.nodeId), rows.map((r) => r.version), rows.map((r) => r.path)],
  );
}

/**
 * Attach local files to the live files they match (same size and checksum)
 * as `nodeId`'s current replicas, in one statement; returns the file ids
 * attached (the others no longer match: the caller reports them).
 */
export async function attachMatching(db: Queryable, nodeId: number, rows: readonly { fileId: number; path: string; size: number; checksum: string }[]): Promise<Set<number>> {
  if (!rows.length) return new Set();
  const done = await db.query<{ id: number }>(
    `INSERT INTO replicas (file_id, node_id, version, path, verified_at)
     SELECT f.id, $1, f.version, u.p, now()
       FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[]) AS u(id, p, s, c)
       JOIN files f ON f.id = u.id AND f.deleted_at IS NULL AND f.size = u.s AND f.checksum = u.c
     ON CONFLICT (file_id, node_id) DO UPDATE SET version = EXCLUDED.version, path = EXCLUDED.path, verified_at = now()
     RETURNING file_id AS id`,
    [nodeId, rows.map((r) => r.fileId), rows.map((r) => r.path), rows.map((r) => r.size), rows.map((r) => r.checksum)],
  );
  return new Set(done.map((r) => r.id));
}

/** Remember checksums of local files that did not match metadata (see walk_hashes). */
export async function cacheWalkHashes(db: Queryable, nodeId: number, rows: readonly { path: string; size: number; mtimeUs: number; checksum: string }[]): Promise<void> {
  if (!rows.length) return;
  await db.query(
    `INSERT INTO walk_hashes (node_id, path, size, mtime_us, checksum)
     SELECT $1, u.p, u.s, u.m, u.c FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[]) AS u(p, s, m, c)
     ON CONFLICT (node_id, path) DO UPDATE SET size = EXCLUDED.size, mtime_us = EXCLUDED.mtime_us, checksum = EXCLUDED.checksum, hashed_at = now()`,
    [nodeId, rows.map((r) => r.path), rows.map((r) => r.size), rows.map((r) => r.mtimeUs), rows.map((r) => r.checksum)],
  );
}

/** Forget cached walk checksums of paths that are now attached or registered. */
export async function forgetWalkHashes(db: Queryable, nodeId: number, paths: readonly string[]): Promise<void> {
  if (paths.length) await db.query('DELETE FROM walk_hashes WHERE node_id = $1 AND path = ANY($2::text[])', [nodeId, paths]);
}

/** Mark a replica verified now (scrub, walk). */
export async function markVerified(db: Queryable, fileId: number, nodeId: number): Promise<void> {
  await db.query('UPDATE replicas SET verified_at = now() WHERE file_id = $1 AND node_id = $2', [fileId, nodeId]);
}

/** Delete a replica row (the replica-loss trigger re-queues a live file). */
export async function deleteReplica(db: Queryable, fileId: number, nodeId: number): Promise<void> {
  await db.query('DELETE FROM replicas WHERE file_id = $1 AND node_id = $2', [fileId, nodeId]);
}

export interface ScrubItem {
  fileId: number;
  path: string;
  nodePath: string;
  version: number;
  fileVersion: number;
  deleted: boolean;
  size: number;
  checksum: string | null;
  /** as text, to keep PostgreSQL's microseconds for the keyset cursor */
  verifiedAt: string | null;
}

export interface ScrubCursor {
  /** null: still in the never-verified replicas; else a timestamptz as text */
  verifiedAt: string | null;
  fileId: number;
}

/**
 * A node's replicas least recently verified first (index
 * replicas_node_verified): never-verified ones, then those verified before
 * `before`, after the keyset cursor (start with null).
 */
export async function replicasToScrub(db: Queryable, nodeId: number, before: Date, limit: number, after: ScrubCursor | null): Promise<ScrubItem[]> {
  const cols = `r.file_id AS "fileId", f.path, r.path AS "nodePath", r.version, f.version AS "fileVersion",
            (f.deleted_at IS NOT NULL) AS deleted, f.size, f.checksum, r.verified_at::text AS "verifiedAt"`;
  let out: ScrubItem[] = [];
  if (!after || after.verifiedAt === null) {
    out = await db.query<ScrubItem & Record<string, unknown>>(
      `SELECT ${cols} FROM replicas r JOIN files f ON f.id = r.file_id
        WHERE r.node_id = $1 AND r.verified_at IS NULL AND r.file_id > $2 AND f.kind = 'file'
        ORDER BY r.file_id LIMIT $3`,
      [nodeId, after?.fileId ?? 0, limit],
    );
    if (out.length) return out;
  }
  const from = after?.verifiedAt ?? '-infinity';
  const fromId = after?.verifiedAt ? after.fileId : 0;
  return db.query<ScrubItem & Record<string, unknown>>(
    `SELECT ${cols} FROM replicas r JOIN files f ON f.id = r.file_id
      WHERE r.node_id = $1 AND r.verified_at < $2 AND (r.verified_at, r.file_id) > ($3::timestamptz, $4::bigint) AND f.kind = 'file'
      ORDER BY r.verified_at, r.file_id LIMIT $5`,
    [nodeId, before, from, fromId, limit],
  );
}

/** Other current replicas of a file on nodes that are not dead (how many good copies besides `nodeId`'s). */
export async function otherCurrentCopies(db: Queryable, fileId: number, nodeId: number): Promise<number> {
  const rows = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM replicas r JOIN files f ON f.id = r.file_id JOIN nodes n ON n.id = r.node_id
      WHERE r.file_id = $1 AND r.node_id <> $2 AND r.version = f.version AND n.state <> 'dead'`,
    [fileId, nodeId],
  );
  return rows[0]?.n ?? 0;
}

export type DropReason = 'drain' | 'stale' | 'trim' | 'corrupt' | 'missing';

/**
 * Remove `nodeId`'s replica row of a file in one transaction, only if that
 * leaves the file no worse off: for 'drain' and 'trim' the file must keep at
 * least its target of current replicas on active/readonly nodes without this
 * one; for 'stale' this replica must not be current; for 'corrupt' another
 * current copy must exist ('missing' always goes: the bytes are gone).
 * Returns the node path whose bytes the caller may now delete, or null when
 * refused (also when `expectedPath` is given and the row names another
 * path). The caller deletes bytes only after this commits, holding the
 * path's lock (MetaStore.withPathLocks).
 */
export async function dropReplica(store: TxnRunner, fileId: number, nodeId: number, reason: DropReason, expectedPath?: string): Promise<string | null> {
  return store.txn(async (tx) => {
    const f = await tx.query<{ version: number; target: number; deleted: boolean }>(
      'SELECT version, replica_target AS target, (deleted_at IS NOT NULL) AS deleted FROM files WHERE id = $1 FOR UPDATE',
      [fileId],
    );
    const file = f[0];
    if (!file) return null;
    const mine = await tx.query<{ version: number; path: string }>('SELECT version, path FROM replicas WHERE file_id = $1 AND node_id = $2', [fileId, nodeId]);
    const r = mine[0];
    if (!r || (expectedPath !== undefined && r.path !== expectedPath)) return null;
    const others = await tx.query<{ kept: number; alive: number }>(
      `SELECT count(*) FILTER (WHERE n.state IN ('active', 'readonly'))::int AS kept, count(*) FILTER (WHERE n.state <> 'dead')::int AS alive
         FROM replicas o JOIN nodes n ON n.id = o.node_id WHERE o.file_id = $1 AND o.node_id <> $2 AND o.version = $3`,
      [fileId, nodeId, file.version],
    );
    const kept = others[0]?.kept ?? 0;
    const alive = others[0]?.alive ?? 0;
    const current = r.version === file.version;
    let ok: boolean;
    switch (reason) {
      case 'drain':
      case 'trim':
        ok = file.deleted || !current || kept >= file.target;
        break;
      case 'stale':
        ok = !current;
        break;
      case 'corrupt':
        ok = !current || alive >= 1;
        break;
      case 'missing':
        ok = true;
        break;
    }
    if (!ok) return null;
    await tx.query('DELETE FROM replicas WHERE file_id = $1 AND node_id = $2', [fileId, nodeId]);
    return r.path;
  });
}

export interface PlacementNodeRow {
  id: number;
  name: string;
  state: 'active' | 'readonly' | 'drain' | 'dead';
  freeBytes: number | null;
  alive: boolean;
}

/** Every node with an `alive` flag: a heartbeat within `freshSec`. */
export async function placementNodes(db: Queryable, freshSec: number): Promise<PlacementNodeRow[]> {
  return db.query<PlacementNodeRow & Record<string, unknown>>(
    `SELECT id, name, state, free_bytes AS "freeBytes",
            coalesce(heartbeat_at > now() - make_interval(secs => $1), false) AS alive
       FROM nodes ORDER BY name`,
    [freshSec],
  );
}

/** Live regular files' ids after `afterId`, in id order (fsck's keyset pages). */
export async function liveFileIds(db: Queryable, afterId: number, limit: number): Promise<number[]> {
  const rows = await db.query<{ id: number }>(`SELECT id FROM files WHERE deleted_at IS NULL AND kind = 'file' AND id > $1 ORDER BY id LIMIT $2`, [afterId, limit]);
  return rows.map((r) => r.id);
}

/** Replica rows still attached to deleted files (pending deletes), per node. */
export async function pendingDeletesByNode(db: Queryable): Promise<{ nodeId: number; n: number }[]> {
  return db.query<{ nodeId: number; n: number }>(`SELECT node_id AS "nodeId", count(*)::int AS n FROM node_work GROUP BY node_id`);
}


export interface NewFile {
  path: string;
  folderId: number;
  size: number;
  checksum: string;
  mode: number;
  uid: number;
  gid: number;
  atimeUs: number;
  mtimeUs: number;
  class: string;
  replicaTarget: number;
  backupTarget: number;
}

/**
 * Register files unknown to metadata in two statements (walk's bulk path):
 * insert those whose path is free (no live file, no folder), then record
 * `nodeId`'s current replica of each. Returns the paths registered; the
 * others (taken meanwhile) are for the caller to compare one by one.
 */
export async function registerNewFiles(db: Queryable, nodeId: number, rows: readonly NewFile[]): Promise<Set<string>> {
  if (!rows.length) return new Set();
  const col = <K extends keyof NewFile>(k: K) => rows.map((r) => r[k]);
  const created = await db.query<{ id: number; path: string; version: number }>(
    `INSERT INTO files (path, folder_id, kind, size, checksum, mode, uid, gid, atime_us, mtime_us, ctime_us, class, replica_target, backup_target)
     SELECT u.p, u.fo, 'file', u.s, u.c, u.m, u.ui, u.gi, u.at, u.mt, (extract(epoch FROM clock_timestamp()) * 1e6)::bigint, u.cl, u.rt, u.bt
       FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::int[], $6::int[], $7::int[], $8::bigint[], $9::bigint[], $10::text[], $11::int[], $12::int[])
            AS u(p, fo, s, c, m, ui, gi, at, mt, cl, rt, bt)
      WHERE NOT EXISTS (SELECT 1 FROM folders d WHERE d.path = u.p COLLATE "C")
     ON CONFLICT (path) WHERE deleted_at IS NULL DO NOTHING
     RETURNING id, path, version`,
    [col('path'), col('folderId'), col('size'), col('checksum'), col('mode'), col('uid'), col('gid'), col('atimeUs'), col('mtimeUs'), col('class'), col('replicaTarget'), col('backupTarget')],
  );
  await addReplicas(db, created.map((c) => ({ fileId: c.id, nodeId, version: c.version, path: c.path })));
  return new Set(created.map((c) => c.path));
}
