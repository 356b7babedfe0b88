/**
 * The replicator's work: the replication queue (files whose replica set may
 * need action, filled by triggers), copy claims, recording a finished copy,
 * per-node pending deletes/renames (node_work, sql/0002) and the
 * over-replicated list. Every read is an index range over the backlog:
 * the cost of a run grows with the work waiting, not with the file count.
 */
import type { MetaStore, Queryable, TxnRunner } from './store.js';

export interface QueueCursor {
  /** timestamptz as text (keeps PostgreSQL's microseconds) */
  notBefore: string;
  fileId: number;
}

export interface QueueEntry {
  fileId: number;
  reason: string;
  notBefore: string;
  /** seconds since it was first queued */
  waitedSec: number;
}

/** Due queue entries after the keyset cursor, oldest due first (index replication_queue_due). */
export async function dueWork(db: Queryable, after: QueueCursor | null, limit: number): Promise<QueueEntry[]> {
  return db.query<QueueEntry & Record<string, unknown>>(
    `SELECT file_id AS "fileId", reason, not_before::text AS "notBefore", extract(epoch FROM now() - enqueued_at)::float8 AS "waitedSec"
       FROM replication_queue
      WHERE not_before <= now() AND (not_before, file_id) > ($1::timestamptz, $2::bigint)
      ORDER BY not_before, file_id LIMIT $3`,
    [after?.notBefore ?? '-infinity', after?.fileId ?? 0, limit],
  );
}

export interface WorkReplica {
  nodeId: number;
  version: number;
  path: string;
}

export interface WorkFile {
  id: number;
  path: string;
  kind: 'file' | 'symlink';
  deleted: boolean;
  size: number;
  checksum: string | null;
  version: number;
  replicaTarget: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeUs: number;
  atimeUs: number;
  replicas: WorkReplica[];
}

/** Files with their replica rows (one round trip for a page of work). */
export async function workFiles(db: Queryable, fileIds: readonly number[]): Promise<WorkFile[]> {
  if (!fileIds.length) return [];
  return db.query<WorkFile & Record<string, unknown>>(
    `SELECT f.id, f.path, f.kind, (f.deleted_at IS NOT NULL) AS deleted, f.size, f.checksum, f.version,
            f.replica_target AS "replicaTarget", f.mode, f.uid, f.gid, f.mtime_us AS "mtimeUs", f.atime_us AS "atimeUs",
            coalesce((SELECT json_agg(json_build_object('nodeId', r.node_id, 'version', r.version, 'path', r.path))
                        FROM replicas r WHERE r.file_id = f.id), '[]'::json) AS replicas
       FROM files f WHERE f.id = ANY($1::bigint[])`,
    [fileIds],
  );
}

/**
 * Remove queue entries (the files are at target with nothing left to clean),
 * each only if it is unchanged since it was read (same not_before): an entry
 * refreshed meanwhile by a trigger (new version, lost replica, node state)
 * stays for the next look.
 */
export async function removeQueued(db: Queryable, entries: readonly QueueEntry[]): Promise<void> {
  if (!entries.length) return;
  await db.query(
    `DELETE FROM replication_queue q USING unnest($1::bigint[], $2::timestamptz[]) AS u(f, nb) WHERE q.file_id = u.f AND q.not_before = u.nb`,
    [entries.map((e) => e.fileId), entries.map((e) => e.notBefore)],
  );
}

/** Push queue entries back by `seconds` (nobody can act on them now), unless refreshed since read. */
export async function deferQueued(db: Queryable, entries: readonly QueueEntry[], seconds: number): Promise<void> {
  if (!entries.length) return;
  await db.query(
    `UPDATE replication_queue q SET not_before = now() + make_interval(secs => $3)
       FROM unnest($1::bigint[], $2::timestamptz[]) AS u(f, nb) WHERE q.file_id = u.f AND q.not_before = u.nb`,
    [entries.map((e) => e.fileId), entries.map((e) => e.notBefore), seconds],
  );
}

/** Put files (back) on the queue, e.g. after a failed copy or to re-check them. */
export async function enqueue(db: Queryable, fileIds: readonly number[], reason: string, delaySec = 0): Promise<void> {
  if (!fileIds.length) return;
  await db.query(
    `INSERT INTO replication_queue (file_id, reason, not_before)
     SELECT id, $2, now() + make_interval(secs => $3) FROM files WHERE id = ANY($1::bigint[]) AND deleted_at IS NULL AND kind = 'file'
     ON CONFLICT (file_id) DO UPDATE SET not_before = GREATEST(replication_queue.not_before, EXCLUDED.not_before), reason = EXCLUDED.reason`,
    [fileIds, reason, delaySec],
  );
}

/**
 * Claim the copies of a batch of files to `nodeId` for `holder`, in one
 * transaction that locks the files' rows (in id order, so concurrent batches
 * cannot deadlock): claims and recorded copies of a file serialise. A file is
 * not claimed when it is gone or changed version, when another live claim for
 * this node exists, or when its current replicas on active/readonly nodes
 * plus other nodes' live claims already reach the target — this is what keeps
 * racing nodes from over-replicating. Returns the ids claimed.
 */
export async function claimCopies(store: MetaStore, files: readonly { fileId: number; version: number }[], nodeId: number, holder: string, ttlSec: number): Promise<Set<number>> {
  if (!files.length) return new Set();
  const ids = [...files.map((f) => f.fileId)].sort((a, b) => a - b);
  const wanted = new Map(files.map((f) => [f.fileId, f.version]));
  return store.txn(async (tx) => {
    // lock first, count after, in two statements: a statement that waited for a lock still reads
    // with the snapshot it started with, and would miss the claims committed meanwhile
    await tx.query(`SELECT id FROM files WHERE id = ANY($1::bigint[]) AND deleted_at IS NULL AND kind = 'file' ORDER BY id FOR UPDATE`, [ids]);
    const rows = await tx.query<{ id: number; version: number; target: number; kept: number; claims: number; mine: number }>(
      `SELECT l.id, l.version, l.replica_target AS target,
              (SELECT count(*) FROM replicas r JOIN nodes n ON n.id = r.node_id
                WHERE r.file_id = l.id AND r.version = l.version AND n.state IN ('active', 'readonly') AND r.node_id <> $2)::int AS kept,
              (SELECT count(*) FROM copy_claims c WHERE c.file_id = l.id AND c.node_id <> $2 AND c.expires_at > now())::int AS claims,
              (SELECT count(*) FROM copy_claims c WHERE c.file_id = l.id AND c.node_id = $2 AND c.expires_at > now() AND c.holder <> $3)::int AS mine
         FROM files l WHERE l.id = ANY($1::bigint[]) AND l.deleted_at IS NULL AND l.kind = 'file'`,
      [ids, nodeId, holder],
    );
    const ok = rows.filter((r) => wanted.get(r.id) === r.version && r.mine === 0 && r.kept + r.claims < r.target).map((r) => r.id);
    if (ok.length) {
      await tx.query(
        `INSERT INTO copy_claims (file_id, node_id, holder, expires_at)
         SELECT unnest($1::bigint[]), $2, $3, now() + make_interval(secs => $4)
         ON CONFLICT (file_id, node_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at`,
        [ok, nodeId, holder, ttlSec],
      );
    }
    return new Set(ok);
  });
}

/** Extend live claims of this holder (long copies). */
export async function renewClaims(db: Queryable, fileIds: readonly number[], nodeId: number, holder: string, ttlSec: number): Promise<void> {
  if (fileIds.length) {
    await db.query(`UPDATE copy_claims SET expires_at = now() + make_interval(secs => $4) WHERE file_id = ANY($1::bigint[]) AND node_id = $2 AND holder = $3`, [fileIds, nodeId, holder, ttlSec]);
  }
}

export async function releaseClaims(db: Queryable, fileIds: readonly number[], nodeId: number, holder: string): Promise<void> {
  if (fileIds.length) await db.query('DELETE FROM copy_claims WHERE file_id = ANY($1::bigint[]) AND node_id = $2 AND holder = $3', [fileIds, nodeId, holder]);
}

/** A copy to record: the file, the version copied and where its bytes are on the node. */
export interface CopyRecord {
  fileId: number;
  version: number;
  nodePath: string;
  /**
   * record only if the file is still live at `nodePath` (default false: the
   * row is recorded whatever happened, and a renamed or deleted file gets a
   * node_work entry from the trigger)
   */
  strict?: boolean;
}

/** A strict copy not recorded: the file is no longer live at the path copied to. */
export interface CopyMismatch {
  fileId: number;
  nodePath: string;
  /** the file's path now (its last path when deleted; null when the row is gone) */
  currentPath: string | null;
  deleted: boolean;
}

/**
 * Record finished, verified, renamed copies and drop their claims, in one
 * transaction (rows locked in id order, so a rename or delete of the file
 * commits either before, and is seen here, or after, and then moves or
 * deletes the recorded row with the file). A replica keeps the copied version
 * (stale if the file changed meanwhile: it will be refreshed). A strict copy
 * whose file was renamed or deleted meanwhile is not recorded (its claim
 * stays) and is returned, for the caller to move or remove its bytes.
 */
export async function recordCopies(store: MetaStore, nodeId: number, holder: string, copies: readonly CopyRecord[]): Promise<CopyMismatch[]> {
  if (!copies.length) return [];
  const sorted = [...copies].sort((a, b) => a.fileId - b.fileId);
  return store.txn(async (tx) => {
    const rows = await tx.query<{ id: number; path: string; deleted: boolean }>(
      'SELECT id, path, (deleted_at IS NOT NULL) AS deleted FROM files WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE',
      [sorted.map((c) => c.fileId)],
    );
    const now = new Map(rows.map((r) => [Number(r.id), r]));
    const mismatched: CopyMismatch[] = [];
    const ok: CopyRecord[] = [];
    for (const c of sorted) {
      const f = now.get(c.fileId);
      if (c.strict && (!f || f.deleted || f.path !== c.nodePath)) mismatched.push({ fileId: c.fileId, nodePath: c.nodePath, currentPath: f?.path ?? null, deleted: f?.deleted ?? true });
      else if (f) ok.push(c);
    }
    if (ok.length) {
      await tx.query(
        `INSERT INTO replicas (file_id, node_id, version, path, verified_at)
         SELECT u.f, $1, u.v, u.p, now() FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS u(f, v, p)
         ON CONFLICT (file_id, node_id) DO UPDATE SET version = EXCLUDED.version, path = EXCLUDED.path, verified_at = now()
         -- never downgrade: a mount may have published a newer version on this node since the copy was placed
         WHERE replicas.version <= EXCLUDED.version`,
        [nodeId, ok.map((c) => c.fileId), ok.map((c) => c.version), ok.map((c) => c.nodePath)],
      );
      await tx.query('DELETE FROM copy_claims WHERE file_id = ANY($1::bigint[]) AND node_id = $2 AND holder = $3', [ok.map((c) => c.fileId), nodeId, holder]);
    }
    return mismatched;
  });
}

/**
 * Drop every claim on copies to `nodeId`: called by a run that holds the
 * node's advisory lock, so any such claim belongs to a run that died.
 */
export async function releaseNodeClaims(db: Queryable, nodeId: number): Promise<number> {
  return (await db.query('DELETE FROM copy_claims WHERE node_id = $1 RETURNING 1', [nodeId])).length;
}

/** Drop expired claims (crashed runs). */
export async function expireClaims(db: Queryable): Promise<number> {
  const rows = await db.query('DELETE FROM copy_claims WHERE expires_at <= now() RETURNING 1');
  return rows.length;
}

export interface NodeWorkItem {
  fileId: number;
  /** where the bytes sit on this node (null: the replica row is gone already) */
  nodePath: string | null;
  filePath: string;
  deleted: boolean;
  /** the replica is of the file's current version (then the file's size and mtime are its bytes') */
  current: boolean;
  size: number;
  mtimeUs: number;
}

const NODE_WORK_SELECT = `SELECT w.file_id AS "fileId", r.path AS "nodePath", f.path AS "filePath", (f.deleted_at IS NOT NULL) AS deleted,
            coalesce(r.version = f.version, false) AS current, f.size, f.mtime_us AS "mtimeUs"
       FROM node_work w JOIN files f ON f.id = w.file_id
       LEFT JOIN replicas r ON r.file_id = w.file_id AND r.node_id = w.node_id`;

/** This node's pending deletes/renames (index node_work pkey), after `afterFileId`. */
export async function nodeWork(db: Queryable, nodeId: number, afterFileId: number, limit: number): Promise<NodeWorkItem[]> {
  return db.query<NodeWorkItem & Record<string, unknown>>(`${NODE_WORK_SELECT} WHERE w.node_id = $1 AND w.file_id > $2 ORDER BY w.file_id LIMIT $3`, [nodeId, afterFileId, limit]);
}

/** One file's pending item on this node as it is now (null when none is pending). */
export async function nodeWorkItem(db: Queryable, nodeId: number, fileId: number): Promise<NodeWorkItem | null> {
  const rows = await db.query<NodeWorkItem & Record<string, unknown>>(`${NODE_WORK_SELECT} WHERE w.node_id = $1 AND w.file_id = $2`, [nodeId, fileId]);
  return rows[0] ?? null;
}

/** Another live file's replica on this node sits at `nodePath` (then a pending delete must not unlink it). */
export async function pathTakenOnNode(db: Queryable, nodeId: number, nodePath: string, exceptFileId: number): Promise<boolean> {
  const rows = await db.query(
    `SELECT 1 FROM replicas r JOIN files f ON f.id = r.file_id
      WHERE r.node_id = $1 AND r.path = $2 AND r.file_id <> $3 AND f.deleted_at IS NULL LIMIT 1`,
    [nodeId, nodePath, exceptFileId],
  );
  return rows.length > 0;
}

/**
 * Any replica row on this node other than `exceptFileId`'s sits at `nodePath`
 * (a live file's, or a deleted or renamed file's whose bytes are still to be
 * removed or moved by node_work).
 */
export async function pathHeldOnNode(db: Queryable, nodeId: number, nodePath: string, exceptFileId: number): Promise<boolean> {
  const rows = await db.query('SELECT 1 FROM replicas WHERE node_id = $1 AND path = $2 AND file_id <> $3 LIMIT 1', [nodeId, nodePath, exceptFileId]);
  return rows.length > 0;
}

/**
 * Finish a pending item in one transaction: a deleted file's replica row
 * goes; a renamed one gets its new node path; the work entry goes.
 */
export async function finishNodeWork(store: TxnRunner, nodeId: number, item: { fileId: number; newNodePath: string | null }): Promise<void> {
  await store.txn(async (tx) => {
    if (item.newNodePath === null) await tx.query('DELETE FROM replicas WHERE file_id = $1 AND node_id = $2', [item.fileId, nodeId]);
    else await tx.query('UPDATE replicas SET path = $3 WHERE file_id = $1 AND node_id = $2', [item.fileId, nodeId, item.newNodePath]);
    await tx.query('DELETE FROM node_work WHERE node_id = $1 AND file_id = $2', [nodeId, item.fileId]);
  });
}

/**
 * Apply a pending rename of this node's replica under the file's row lock,
 * so that it cannot interleave with a mount registering a new version of
 * the file (which puts its own bytes at the file's path): only while the
 * file is live at `toPath` and this node's replica row still names
 * `fromNodePath` does `move` run and the row follow. Returns false (nothing
 * moved) when either changed meanwhile; the caller looks again later.
 */
export async function moveReplicaLocked(store: TxnRunner, nodeId: number, fileId: number, fromNodePath: string, toPath: string, move: () => Promise<void>): Promise<boolean> {
  return store.txn(async (tx) => {
    const f = await tx.query<{ path: string }>('SELECT path FROM files WHERE id = $1 AND deleted_at IS NULL FOR UPDATE', [fileId]);
    const r = await tx.query<{ path: string }>('SELECT path FROM replicas WHERE file_id = $1 AND node_id = $2', [fileId, nodeId]);
    if (f[0]?.path !== toPath || r[0]?.path !== fromNodePath) return false;
    await move();
    await tx.query('UPDATE replicas SET path = $3 WHERE file_id = $1 AND node_id = $2', [fileId, nodeId, toPath]);
    await tx.query('DELETE FROM node_work WHERE node_id = $1 AND file_id = $2', [nodeId, fileId]);
    return true;
  });
}

/**
 * Run `fn` holding the file's row lock, with the row as it is now (null when
 * gone). A replicator places a copy this way, so that a mount registering a
 * newer version cannot be overtaken: either the mount's commit came first
 * (the version differs: nothing is placed) or it waits and publishes its
 * bytes after.
 */
export async function underFileLock<T>(store: TxnRunner, fileId: number, fn: (file: { path: string; version: number; deleted: boolean } | null) => Promise<T>): Promise<T> {
  return store.txn(async (tx) => {
    const rows = await tx.query<{ path: string; version: number; deleted: boolean }>(
      'SELECT path, version, (deleted_at IS NOT NULL) AS deleted FROM files WHERE id = $1 FOR UPDATE',
      [fileId],
    );
    return fn(rows[0] ? { ...rows[0], version: Number(rows[0].version) } : null);
  });
}

/** Remember over-replicated files (reported; trimmed by `replicate --trim`). */
export async function markOverReplicated(db: Queryable, fileIds: readonly number[]): Promise<void> {
  if (fileIds.length) await db.query('INSERT INTO over_replicated (file_id) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING', [fileIds]);
}

export async function clearOverReplicated(db: Queryable, fileIds: readonly number[]): Promise<void> {
  if (fileIds.length) await db.query('DELETE FROM over_replicated WHERE file_id = ANY($1::bigint[])', [fileIds]);
}

export async function overReplicated(db: Queryable, afterFileId: number, limit: number): Promise<number[]> {
  const rows = await db.query<{ id: number }>('SELECT file_id AS id FROM over_replicated WHERE file_id > $1 ORDER BY file_id LIMIT $2', [afterFileId, limit]);
  return rows.map((r) => r.id);
}
