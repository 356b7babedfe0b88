/**
 * What one node's replicator should do about one file, decided from the
 * file's replica set and the nodes' states alone (pure: no I/O), so that
 * every node reaches the same answer without talking.
 *
 * Rules:
 * - A replica is *current* when its version is the file's version. Current
 *   replicas on `active` and `readonly` nodes are *kept*; on a `drain` node it
 *   still serves as a source but does not count; on a `dead` node it neither
 *   counts nor serves.
 * - need = replicaTarget - kept. The nodes that should make the missing
 *   copies are the `need` first *eligible* nodes (active, fresh heartbeat,
 *   free space >= max(minFreeBytes, size), no current replica), ranked by:
 *   holding a stale replica first (it gets overwritten in place), then
 *   rendezvous weight of the file id. `widen` (a file waiting too long)
 *   lets every eligible node try; claims keep the total at target.
 * - A `drain` node drops its copy once kept >= target (copy first, delete
 *   after). A stale replica is dropped once kept >= target and the node was
 *   not chosen to refresh it.
 * - A `readonly` node never drops anything.
 * - kept > target is over-replication: reported; trimmed only when asked, by
 *   the holders of lowest rendezvous weight (never below target).
 */
import { rank } from './rendezvous.js';

export type NodeState = 'active' | 'readonly' | 'drain' | 'dead';

export interface PlacementNode {
  id: number;
  name: string;
  state: NodeState;
  freeBytes: number | null;
  /** heartbeat recent enough for the node to be trusted to take work */
  alive: boolean;
}

export interface PlacementReplica {
  nodeId: number;
  version: number;
}

export interface PlacementFile {
  id: number;
  version: number;
  size: number;
  replicaTarget: number;
  replicas: readonly PlacementReplica[];
}

export interface PlacementOptions {
  minFreeBytes: number;
  /** every eligible node may copy (the file has waited too long) */
  widen?: boolean;
  /** trim over-replication (only when asked) */
  trim?: boolean;
}

export interface Plan {
  kept: number;
  need: number;
  /** nodes that should make the missing copies, best first */
  chosen: PlacementNode[];
  /** this node should copy the file to itself */
  copyHere: boolean;
  /** this node should remove its replica (and bytes): why */
  dropHere: 'drain' | 'stale' | 'trim' | null;
  /** kept > target */
  over: boolean;
  /** nobody can take the missing copies now (no eligible node) */
  stuck: boolean;
  /** nothing left for anybody: the queue entry can go */
  done: boolean;
}

function isCurrent(file: PlacementFile, r: PlacementReplica): boolean {
  return r.version === file.version;
}

/** Whether a node may receive a new copy of a file of `size` bytes. */
export function canReceive(n: PlacementNode, size: number, minFreeBytes: number): boolean {
  return n.state === 'active' && n.alive && n.freeBytes !== null && n.freeBytes >= Math.max(minFreeBytes, size);
}

/** Decide what node `selfId` does about `file`. */
export function plan(file: PlacementFile, nodes: readonly PlacementNode[], selfId: number, opts: PlacementOptions): Plan {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const stateOf = (id: number): NodeState => byId.get(id)?.state ?? 'dead';
  const current = file.replicas.filter((r) => isCurrent(file, r));
  const keptReplicas = current.filter((r) => stateOf(r.nodeId) === 'active' || stateOf(r.nodeId) === 'readonly');
  const kept = keptReplicas.length;
  const need = Math.max(0, file.replicaTarget - kept);
  const holdsCurrent = new Set(current.map((r) => r.nodeId));
  const holdsStale = new Set(file.replicas.filter((r) => !isCurrent(file, r)).map((r) => r.nodeId));

  const eligible = nodes.filter((n) => !holdsCurrent.has(n.id) && canReceive(n, file.size, opts.minFreeBytes));
  const ranked = rank(file.id, eligible);
  const ordered = [...ranked.filter((n) => holdsStale.has(n.id)), ...ranked.filter((n) => !holdsStale.has(n.id))];
  const chosen = need > 0 ? (opts.widen ? ordered : ordered.slice(0, need)) : [];
  const self = byId.get(selfId);
  const copyHere = chosen.some((n) => n.id === selfId);

  let dropHere: Plan['dropHere'] = null;
  const over = kept > file.replicaTarget;
  // a readonly node only serves: it removes nothing (its copies count)
  if (self && self.state !== 'readonly' && kept >= file.replicaTarget) {
    if (self.state === 'drain' && holdsCurrent.has(selfId)) dropHere = 'drain';
    else if (holdsStale.has(selfId) && self.state !== 'dead') dropHere = 'stale';
    else if (over && opts.trim && keptReplicas.some((r) => r.nodeId === selfId)) {
      // the (kept - target) holders of lowest weight give their copy up
      const holders = rank(file.id, keptReplicas.map((r) => byId.get(r.nodeId)!));
      const losers = holders.slice(file.replicaTarget);
      if (losers.some((n) => n.id === selfId)) dropHere = 'trim';
    }
  }

  const leftovers = file.replicas.some((r) => {
    const s = stateOf(r.nodeId);
    return (s === 'drain' && isCurrent(file, r)) || (s !== 'dead' && !isCurrent(file, r));
  });
  return {
    kept,
    need,
    chosen,
    copyHere,
    dropHere,
    over,
    stuck: need > 0 && eligible.length === 0,
    done: need === 0 && !leftovers,
  };
}
