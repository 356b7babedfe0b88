/**
 * Walk: `geogridfs replicator walk` registering a tree of small files that
 * sits on a node folder (hash + metadata) vs `find … -exec md5sum {} +` of the
 * same tree on the bare folder and through mergerfs. Cold cache for all.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RoundPlanner, failReason, io, orderFor, Samples, timed, type BenchContext } from '../lib/context.js';
import { dropCaches } from '../lib/proc.js';
import { TARGETS, type WorkloadResult } from '../lib/types.js';

/** Files of `count` × `size` bytes in folders of 100, under `prefix`. */
export function flatSpec(prefix: string, count: number, size: number): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(`${prefix}/d${String(Math.floor(i / 100)).padStart(4, '0')}/f${String(i).padStart(6, '0')}\t${size}`);
  return lines.join('\n') + '\n';
}

export async function walkWorkload(ctx: BenchContext): Promise<WorkloadResult[]> {
  const { walkCount: n, walkFileBytes: size, rounds } = ctx.sizes;
  const s = new Samples();
  const na = ctx.ggfs.unavailable('walk');
  if (na) s.fail(['walk'], 'geogridfs', na);
  const n1 = ctx.ggfs.nodes.n1!;
  const plan = new RoundPlanner(rounds, ctx.sizes.budgetSec['walk'] ?? Infinity, ctx.extraRoundsUntil);
  for (let r = 0; r < rounds; r++) {
    if (!plan.anyRuns(TARGETS, r)) break;
    const rel = `walk-r${r}`;
    const spec = path.join(ctx.scratch, `${rel}.spec`);
    await writeFile(spec, flatSpec(rel, n, size));
    // the same bytes in all three places: bare, a mergerfs branch (seen through its mount), node n1
    const roots = [ctx.bare, ctx.mergerfs.branches[0]!, ...(na ? [] : [n1])];
    await io(['mktree', spec, ...roots]);
    for (const t of orderFor(r, TARGETS)) {
      if (!plan.runs(t, r)) continue;
      const endRound = plan.begin(t);
      if (t === 'geogridfs' && na) continue;
      ctx.log(`  walk round ${r + 1}/${rounds} on ${t}`);
      try {
        await dropCaches();
        if (t === 'geogridfs') {
          s.add('walk', t, (await ctx.ggfs.timedCli(['replicator', 'walk', '--path', `/${rel}`, '-q'], 'n1')).ms / 1000);
          await verifyRegistered(ctx, `/${rel}`, n);
        } else {
          const dir = path.join(t === 'bare' ? ctx.bare : ctx.mergerfs.mount, rel);
          s.add('walk', t, (await timed('find', [dir, '-type', 'f', '-exec', 'md5sum', '{}', '+'], { discardStdout: true })) / 1000);
        }
      } catch (err) {
        s.fail(['walk'], t, failReason(err));
      }
      endRound();
    }
    await rm(path.join(ctx.bare, rel), { recursive: true, force: true });
    await rm(path.join(ctx.mergerfs.branches[0]!, rel), { recursive: true, force: true });
    await rm(spec, { force: true });
  }
  const k = n >= 1000 ? `${n / 1000}k` : String(n);
  return [
    {
      id: 'walk',
      title: `walk of ${k} files (register with checksums) vs find -exec md5sum`,
      unit: 's',
      goal: { kind: 'speed', min: 0.8 },
      applies: [...TARGETS],
      tools: { bare: 'find -type f -exec md5sum {} +', mergerfs: 'find -type f -exec md5sum {} + (through mergerfs)', geogridfs: 'geogridfs replicator walk (node n1)' },
      values: s.values('walk', TARGETS),
    },
  ];
}

/** The walk must really have registered the files (a figure from a no-op would be fake). */
async function verifyRegistered(ctx: BenchContext, prefix: string, expected: number): Promise<void> {
  const store = await ctx.ggfs.store();
  const rows = await store.query<{ n: string }>(
    `SELECT count(*) AS n FROM files f JOIN replicas r ON r.file_id = f.id AND r.version = f.version JOIN nodes n ON n.id = r.node_id
      WHERE n.name = 'n1' AND f.deleted_at IS NULL AND f.path >= $1 AND f.path < $2`,
    [prefix + '/', prefix + '0'],
  );
  const got = Number(rows[0]?.n ?? 0);
  if (got !== expected) throw new Error(`walk registered ${got} of ${expected} files`);
}
