/**
 * Which backup nodes hold which file: a live file whose backup target is k
 * is assigned to the k ACTIVE backup nodes of highest rendezvous weight for
 * its id (src/replicator/rendezvous.ts; the SQL in src/meta/backups.ts
 * computes the same for the dashboard). Adding or revoking a backup node
 * moves only the files whose top k changes.
 *
 * The active set is read at most once per CACHE_MS per API process, and
 * named by a generation (a hash of the active names): every feed page
 * carries it, and an agent that sees a new generation goes over the feed
 * again from the start, so files newly assigned to it (with seq below its
 * cursor) reach it, and files no longer assigned to it come as not wanted.
 */
import { createHash } from 'node:crypto';
import type { Queryable } from '../meta/store.js';
import { activeBackupNodes, type ActiveBackupNode } from '../meta/backups.js';
import { pick } from '../replicator/rendezvous.js';

const CACHE_MS = 2000;

export interface Membership {
  nodes: ActiveBackupNode[];
  /** names the active set: changes whenever a backup node is added or revoked */
  generation: string;
}

export function generationOf(nodes: readonly { name: string }[]): string {
  const names = nodes.map((n) => n.name).sort();
  return createHash('sha256').update(names.join('\n')).digest('hex').slice(0, 16);
}

/** Whether `nodeName` is among the `backupTarget` chosen active backup nodes of file `fileId`. */
export function isAssigned(m: Membership, fileId: number, backupTarget: number, nodeName: string): boolean {
  if (backupTarget <= 0) return false;
  return pick(fileId, m.nodes, backupTarget).some((n) => n.name === nodeName);
}

/** The active backup set, cached briefly (a revoke or add is seen within CACHE_MS). */
export class MembershipCache {
  private value: { at: number; m: Promise<Membership> } | null = null;
  constructor(private readonly db: Queryable) {}

  get(): Promise<Membership> {
    const now = performance.now();
    if (!this.value || now - this.value.at > CACHE_MS) {
      const m = activeBackupNodes(this.db).then((nodes) => ({ nodes, generation: generationOf(nodes) }));
      this.value = { at: now, m };
      m.catch(() => {
        if (this.value?.m === m) this.value = null;
      });
    }
    return this.value.m;
  }
}
