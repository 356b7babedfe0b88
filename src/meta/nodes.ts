/**
 * Storage nodes: registration, state, heartbeat.
 */
import type { Queryable } from './store.js';
import { GeoError } from '../util/errors.js';

export const NODE_STATES = ['active', 'readonly', 'drain', 'dead'] as const;
export type NodeState = (typeof NODE_STATES)[number];

export interface NodeRow {
  id: number;
  name: string;
  state: NodeState;
  capacityBytes: number | null;
  freeBytes: number | null;
  heartbeatAt: Date | null;
  createdAt: Date;
  stateChangedAt: Date;
}

const COLUMNS = `id, name, state, capacity_bytes AS "capacityBytes", free_bytes AS "freeBytes",
  heartbeat_at AS "heartbeatAt", created_at AS "createdAt", state_changed_at AS "stateChangedAt"`;

export async function listNodes(db: Queryable): Promise<NodeRow[]> {
  return db.query<NodeRow & Record<string, unknown>>(`SELECT ${COLUMNS} FROM nodes ORDER BY name`);
}

export async function getNode(db: Queryable, name: string): Promise<NodeRow | null> {
  const rows = await db.query<NodeRow & Record<string, unknown>>(`SELECT ${COLUMNS} FROM nodes WHERE name = $1`, [name]);
  return rows[0] ?? null;
}

/** Add a node; CONFLICT if the name is taken. */
export async function addNode(db: Queryable, name: string, state: NodeState = 'active'): Promise<NodeRow> {
  try {
    const rows = await db.query<NodeRow & Record<string, unknown>>(`INSERT INTO nodes (name, state) VALUES ($1, $2) RETURNING ${COLUMNS}`, [name, state]);
    return rows[0]!;
  } catch (err) {
    if ((err as { code?: string }).code === '23505') throw new GeoError('CONFLICT', `node "${name}" already exists`);
    if ((err as { code?: string }).code === '23514') throw new GeoError('USAGE', `invalid node name or state: "${name}" / "${state}"`);
    throw err;
  }
}

/** Add every named node that is missing (used by `up` and tests); returns the full list. */
export async function ensureNodes(db: Queryable, names: readonly string[]): Promise<NodeRow[]> {
  for (const name of names) {
    await db.query('INSERT INTO nodes (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [name]);
  }
  return listNodes(db);
}

export async function setNodeState(db: Queryable, name: string, state: NodeState): Promise<NodeRow> {
  if (!NODE_STATES.includes(state)) throw new GeoError('USAGE', `invalid state "${state}": one of ${NODE_STATES.join(', ')}`);
  const rows = await db.query<NodeRow & Record<string, unknown>>(`UPDATE nodes SET state = $2 WHERE name = $1 RETURNING ${COLUMNS}`, [name, state]);
  if (!rows[0]) throw new GeoError('NOT_FOUND', `no node named "${name}"`);
  return rows[0];
}

/** Record a node's space and liveness (written by its replicator). */
export async function heartbeat(db: Queryable, name: string, capacityBytes: number, freeBytes: number): Promise<void> {
  await db.query('UPDATE nodes SET capacity_bytes = $2::bigint, free_bytes = LEAST($3::bigint, $2::bigint), heartbeat_at = now() WHERE name = $1', [name, capacityBytes, freeBytes]);
}

/**
 * Files for which this node holds the only current replica (capped list),
 * used to refuse removing a node that would lose data.
 */
export async function soleCopies(db: Queryable, nodeId: number, limit = 10): Promise<{ path: string }[]> {
  return db.query<{ path: string }>(
    `SELECT f.path FROM replicas r JOIN files f ON f.id = r.file_id
      WHERE r.node_id = $1 AND f.deleted_at IS NULL AND r.version = f.version
        AND NOT EXISTS (SELECT 1 FROM replicas o JOIN nodes n ON n.id = o.node_id
                         WHERE o.file_id = r.file_id AND o.node_id <> r.node_id AND o.version = f.version AND n.state <> 'dead')
      LIMIT $2`,
    [nodeId, limit],
  );
}

/**
 * Remove a node from metadata. Refuses (UNSAFE) while it holds the only
 * current copy of any file; its other replica rows are dropped (the files
 * are re-queued for replication by trigger).
 */
export async function removeNode(db: Queryable, name: string): Promise<void> {
  const node = await getNode(db, name);
  if (!node) throw new GeoError('NOT_FOUND', `no node named "${name}"`);
  const sole = await soleCopies(db, node.id);
  if (sole.length) {
    throw new GeoError('UNSAFE', `node "${name}" holds the only copy of ${sole.length >= 10 ? 'at least 10' : sole.length} file(s), e.g. ${sole[0]!.path}: drain it first (geogridfs node set-state ${name} drain)`);
  }
  await db.query('DELETE FROM replicas WHERE node_id = $1', [node.id]);
  await db.query('DELETE FROM nodes WHERE id = $1', [node.id]);
}
