/**
 * Re-classification of existing files after the configured patterns or
 * targets changed (`geogridfs classes apply`).
 */
import type { MetaStore } from './store.js';
import type { Classifier } from '../util/classify.js';

export interface ApplyResult {
  scanned: number;
  changed: number;
  byClass: Record<string, number>;
}

/**
 * Walk every live file in id order (keyset pages of `batch`), and update the
 * class and targets of those whose classification differs. Each page is one
 * transaction; the replication queue picks changed targets up by trigger.
 */
export async function applyClasses(store: MetaStore, classify: Classifier, opts: { batch?: number; dryRun?: boolean; onProgress?: (r: ApplyResult) => void } = {}): Promise<ApplyResult> {
  const batch = opts.batch ?? 5000;
  const result: ApplyResult = { scanned: 0, changed: 0, byClass: {} };
  let after = 0;
  for (;;) {
    const rows = await store.query<{ id: number; path: string; class: string; rt: number; bt: number }>(
      `SELECT id, path, class, replica_target AS rt, backup_target AS bt FROM files
        WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2`,
      [after, batch],
    );
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.id;
    result.scanned += rows.length;
    const changes: { id: number; c: string; rt: number; bt: number }[] = [];
    for (const r of rows) {
      const c = classify(r.path);
      if (c.class !== r.class || c.replicaTarget !== r.rt || c.backupTarget !== r.bt) {
        changes.push({ id: r.id, c: c.class, rt: c.replicaTarget, bt: c.backupTarget });
        result.byClass[c.class] = (result.byClass[c.class] ?? 0) + 1;
      }
    }
    if (changes.length && !opts.dryRun) {
      await store.txn(async (tx) => {
        await tx.query(
          `UPDATE files f SET class = u.c, replica_target = u.rt, backup_target = u.bt
             FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[]) AS u(id, c, rt, bt)
            WHERE f.id = u.id AND f.deleted_at IS NULL`,
          [changes.map((x) => x.id), changes.map((x) => x.c), changes.map((x) => x.rt), changes.map((x) => x.bt)],
        );
      });
    }
    result.changed += changes.length;
    opts.onProgress?.(result);
  }
  return result;
}
