/**
 * The change feed for backup hosts and the folder listing for their walk.
 *
 * `feedAfter` returns files and tombstones whose `seq` is greater than a
 * cursor, in seq order, using the unique index on files.seq (no scan).
 *
 * Sequence values are taken before commit, so a transaction that took seq 9
 * may commit after one that took seq 10. A reader that saw 10 and moved its
 * cursor past it would miss 9 forever. The feed therefore stops at the first
 * row written by a transaction that is not older than the oldest writing
 * transaction still running in this database (pg_stat_activity.backend_xid;
 * every geogridfs process uses the same role, so it sees them all): every
 * lower seq is then final. The page says `settled: false` when it stopped
 * there; the caller simply asks again later. (Left open: the microseconds
 * between a trigger's nextval() and the transaction's first xid.)
 */
import type { Queryable } from './store.js';
import { subtreeRange } from '../util/vpath.js';

export interface FeedItem {
  seq: number;
  id: number;
  path: string;
  kind: 'file' | 'symlink';
  size: number;
  mode: number;
  mtimeUs: number;
  checksum: string | null;
  symlinkTarget: string | null;
  version: number;
  deleted: boolean;
  /** false when the file's class wants no off-site copy, or (API) the calling backup node is not chosen for it; agents treat it like a deletion */
  wanted: boolean;
  /** off-site copies the file's class wants */
  backupTarget: number;
  /** for a rename tombstone: the moved file as it is now (null when it is gone since) */
  renamedTo: RenamedTarget | null;
}

/** The current state of the file a rename tombstone points at. */
export type RenamedTarget = Omit<FeedItem, 'deleted' | 'renamedTo'>;

export interface FeedPage {
  items: FeedItem[];
  /** cursor to ask after next time (the last item's seq, or the given cursor) */
  next: number;
  /** more rows are ready right now */
  more: boolean;
  /** false when the page stopped before a row a running transaction may still precede */
  settled: boolean;
}

interface FeedRow extends FeedItem {
  unsafe: boolean;
  r: RenamedTarget | null;
}

/** One page of the change feed after `after` (at most `limit` items). */
export async function feedAfter(db: Queryable, after: number, limit: number): Promise<FeedPage> {
  const rows = await db.query<FeedRow & Record<string, unknown>>(
    `WITH horizon AS (
       SELECT coalesce(max(age(backend_xid)), -1) AS a FROM pg_stat_activity
        WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid())
     SELECT f.seq, f.id, f.path, f.kind, f.size, f.mode, f.mtime_us AS "mtimeUs", f.checksum,
            f.symlink_target AS "symlinkTarget", f.version, (f.deleted_at IS NOT NULL) AS deleted,
            (f.backup_target > 0) AS wanted, f.backup_target AS "backupTarget", age(f.xmin) <= h.a AS unsafe,
            CASE WHEN t.id IS NULL THEN NULL ELSE json_build_object('id', t.id, 'path', t.path, 'kind', t.kind, 'size', t.size,
              'mode', t.mode, 'mtimeUs', t.mtime_us, 'checksum', t.checksum, 'symlinkTarget', t.symlink_target,
              'version', t.version, 'seq', t.seq, 'wanted', t.backup_target > 0, 'backupTarget', t.backup_target) END AS r
       FROM files f CROSS JOIN horizon h
       LEFT JOIN files t ON t.id = f.renamed_to AND t.deleted_at IS NULL
      WHERE f.seq > $1
      ORDER BY f.seq
      LIMIT $2`,
    [after, limit + 1],
  );
  const items: FeedItem[] = [];
  let settled = true;
  for (const r of rows.slice(0, limit)) {
    if (r.unsafe) {
      settled = false;
      break;
    }
    items.push({
      seq: r.seq,
      id: r.id,
      path: r.path,
      kind: r.kind,
      size: r.size,
      mode: r.mode,
      mtimeUs: r.mtimeUs,
      checksum: r.checksum,
      symlinkTarget: r.symlinkTarget,
      version: r.version,
      deleted: r.deleted,
      wanted: r.wanted,
      backupTarget: r.backupTarget,
      renamedTo: r.r,
    });
  }
  const next = items.length ? items[items.length - 1]!.seq : after;
  const more = settled && rows.length > limit;
  return { items, next, more, settled };
}

/** The highest seq handed out so far (for "behind" figures). */
export async function latestSeq(db: Queryable): Promise<number> {
  const rows = await db.query<{ s: number | null }>('SELECT max(seq)::bigint AS s FROM files');
  return rows[0]?.s ?? 0;
}

export interface ListedFile {
  id: number;
  name: string;
  kind: 'file' | 'symlink';
  size: number;
  mtimeUs: number;
  checksum: string | null;
  version: number;
  wanted: boolean;
  backupTarget: number;
}

export interface FolderListing {
  path: string;
  folders: string[];
  files: ListedFile[];
  /** pass as `after` for the next page, null when this was the last */
  nextAfter: string | null;
}

/**
 * Children of a folder (sub-folders then files by name), paged by name:
 * entries whose name sorts after `after` (byte-wise). Null when the folder
 * does not exist.
 */
export async function listFolderPage(db: Queryable, folderPath: string, after: string | null, limit: number): Promise<FolderListing | null> {
  const folder = await db.query<{ id: number }>('SELECT id FROM folders WHERE path = $1', [folderPath]);
  if (!folder[0]) return null;
  const [lo] = subtreeRange(folderPath);
  const prefixLen = lo.length; // children are lo + name
  const afterPath = after === null ? null : lo + after;
  const folders = await db.query<{ name: string }>(
    `SELECT substr(path, $3) AS name FROM folders WHERE parent_id = $1 AND ($2::text IS NULL OR path > $2 COLLATE "C")
      ORDER BY path COLLATE "C" LIMIT $4`,
    [folder[0].id, afterPath, prefixLen + 1, limit + 1],
  );
  const files = await db.query<ListedFile & Record<string, unknown>>(
    `SELECT id, substr(path, $3) AS name, kind, size, mtime_us AS "mtimeUs", checksum, version, (backup_target > 0) AS wanted, backup_target AS "backupTarget"
       FROM files WHERE folder_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR path > $2 COLLATE "C")
      ORDER BY path COLLATE "C" LIMIT $4`,
    [folder[0].id, afterPath, prefixLen + 1, limit + 1],
  );
  // merge the two sorted lists and cut at `limit`
  const merged: ({ t: 'd'; name: string } | { t: 'f'; f: ListedFile })[] = [
    ...folders.map((d) => ({ t: 'd' as const, name: d.name })),
    ...files.map((f) => ({ t: 'f' as const, f })),
  ].sort((a, b) => {
    const na = Buffer.from(a.t === 'd' ? a.name : a.f.name);
    const nb = Buffer.from(b.t === 'd' ? b.name : b.f.name);
    return Buffer.compare(na, nb);
  });
  const page = merged.slice(0, limit);
  const last = page[page.length - 1];
  return {
    path: folderPath,
    folders: page.filter((e) => e.t === 'd').map((e) => (e as { name: string }).name),
    files: page.filter((e) => e.t === 'f').map((e) => (e as { f: ListedFile }).f),
    nextAfter: merged.length > limit && last ? (last.t === 'd' ? last.name : last.f.name) : null,
  };
}

export interface ContentFile {
  id: number;
  kind: 'file' | 'symlink';
  size: number;
  mode: number;
  mtimeUs: number;
  checksum: string | null;
  version: number;
  backupTarget: number;
  /** current-version replicas with their node (state and name) */
  replicas: { nodeId: number; nodeName: string; nodeState: string; version: number; path: string }[];
}

/** A live file and its current-version replicas, in one round trip (the content endpoint's hot path). */
export async function fileForContent(db: Queryable, vpath: string): Promise<ContentFile | null> {
  const rows = await db.query<ContentFile & Record<string, unknown>>(
    `SELECT f.id, f.kind, f.size, f.mode, f.mtime_us AS "mtimeUs", f.checksum, f.version, f.backup_target AS "backupTarget",
            coalesce((SELECT json_agg(json_build_object('nodeId', n.id, 'nodeName', n.name, 'nodeState', n.state, 'version', r.version, 'path', r.path))
                        FROM replicas r JOIN nodes n ON n.id = r.node_id
                       WHERE r.file_id = f.id AND r.version = f.version), '[]'::json) AS replicas
       FROM files f WHERE f.path = $1 AND f.deleted_at IS NULL`,
    [vpath],
  );
  return rows[0] ?? null;
}
