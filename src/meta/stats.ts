/**
 * Grid-wide figures for `geogridfs status`, the dashboard and /metrics.
 * Counts are derived from replicas/backups at query time, never stored.
 */
import type { Queryable } from './store.js';
import { backupProgress } from './backups.js';

export interface NodeStats {
  name: string;
  state: string;
  capacityBytes: number | null;
  freeBytes: number | null;
  heartbeatAgeSec: number | null;
  files: number;
  bytes: number;
}

export interface ClassStats {
  class: string;
  files: number;
  bytes: number;
  under: number;
  underBytes: number;
  at: number;
  over: number;
}

export interface BackupNodeStats {
  name: string;
  active: boolean;
  lastSeenAgeSec: number | null;
  held: number;
  heldBytes: number;
  wanted: number;
  behindFiles: number;
  behindBytes: number;
}

export interface GridStats {
  files: number;
  bytes: number;
  folders: number;
  symlinks: number;
  tombstones: number;
  under: number;
  at: number;
  over: number;
  queue: number;
  openProblems: number;
  nodes: NodeStats[];
  classes: ClassStats[];
  backupNodes: BackupNodeStats[];
}

export async function gridStats(db: Queryable): Promise<GridStats> {
  const [totals] = await db.query<{ files: number; bytes: number; symlinks: number; tombstones: number; folders: number; queue: number; problems: number }>(
    `SELECT (SELECT count(*) FROM files WHERE deleted_at IS NULL AND kind = 'file')::bigint AS files,
            (SELECT coalesce(sum(size), 0) FROM files WHERE deleted_at IS NULL AND kind = 'file')::bigint AS bytes,
            (SELECT count(*) FROM files WHERE deleted_at IS NULL AND kind = 'symlink')::bigint AS symlinks,
            (SELECT count(*) FROM files WHERE deleted_at IS NOT NULL)::bigint AS tombstones,
            (SELECT count(*) FROM folders)::bigint AS folders,
            (SELECT count(*) FROM replication_queue)::bigint AS queue,
            (SELECT count(*) FROM problems WHERE resolved_at IS NULL)::bigint AS problems`,
  );
  const nodes = await db.query<NodeStats & Record<string, unknown>>(
    `SELECT n.name, n.state, n.capacity_bytes AS "capacityBytes", n.free_bytes AS "freeBytes",
            extract(epoch FROM now() - n.heartbeat_at)::float8 AS "heartbeatAgeSec",
            count(f.id)::bigint AS files, coalesce(sum(f.size), 0)::bigint AS bytes
       FROM nodes n
       LEFT JOIN replicas r ON r.node_id = n.id
       LEFT JOIN files f ON f.id = r.file_id AND f.deleted_at IS NULL AND r.version = f.version
      GROUP BY n.id ORDER BY n.name`,
  );
  const classes = await db.query<ClassStats & Record<string, unknown>>(
    `SELECT class, count(*)::bigint AS files, coalesce(sum(size), 0)::bigint AS bytes,
            count(*) FILTER (WHERE kept_replicas < replica_target)::bigint AS under,
            coalesce(sum(size) FILTER (WHERE kept_replicas < replica_target), 0)::bigint AS "underBytes",
            count(*) FILTER (WHERE kept_replicas = replica_target)::bigint AS at,
            count(*) FILTER (WHERE kept_replicas > replica_target)::bigint AS over
       FROM file_replica_counts GROUP BY class ORDER BY class`,
  );
  // each backup node's share: the files rendezvous assigns to it (as the API serves them)
  const backupNodes: BackupNodeStats[] = await backupProgress(db);
  const sum = (k: 'under' | 'at' | 'over') => classes.reduce((a, c) => a + c[k], 0);
  return {
    files: totals!.files,
    bytes: totals!.bytes,
    folders: totals!.folders,
    symlinks: totals!.symlinks,
    tombstones: totals!.tombstones,
    under: sum('under'),
    at: sum('at'),
    over: sum('over'),
    queue: totals!.queue,
    openProblems: totals!.problems,
    nodes,
    classes,
    backupNodes,
  };
}
