/**
 * Replicate: `geogridfs replicator replicate` on node n2 copying a mixed-size
 * set (registered on n1 by a walk) vs `cp -a` of the same files followed by
 * `sync` (the replicator verifies and fsyncs every copy, so the baseline is
 * made durable too), on the bare folder and through mergerfs. Cold cache.
 * Node n3 is set readonly during the run so that every second copy goes to n2.
 */
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RoundPlanner, failReason, io, orderFor, Samples, timed, type BenchContext } from '../lib/context.js';
import { check, dropCaches } from '../lib/proc.js';
import { mixedSpec } from '../lib/sizes.js';
import { TARGETS, type WorkloadResult } from '../lib/types.js';

/** Total bytes of the regular files under `dir` (0 when missing). */
export async function treeBytes(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const sub = await treeBytes(p);
      files += sub.files;
      bytes += sub.bytes;
    } else if (e.isFile()) {
      files++;
      bytes += (await stat(p)).size;
    }
  }
  return { files, bytes };
}

export function fmtSize(n: number): string {
  return n >= 2 ** 30 ? `${+(n / 2 ** 30).toFixed(2)} GiB` : `${+(n / 2 ** 20).toFixed(1)} MiB`;
}

/** Write a spec file for io mktree; returns its path and totals. */
export async function writeSpec(ctx: BenchContext, name: string, spec: { rel: string; size: number }[]): Promise<{ file: string; files: number; bytes: number }> {
  const file = path.join(ctx.scratch, `${name}.spec`);
  await writeFile(file, spec.map((f) => `${f.rel}\t${f.size}`).join('\n') + '\n');
  return { file, files: spec.length, bytes: spec.reduce((a, f) => a + f.size, 0) };
}

/** Register a subtree already placed on node n1 (`replicator walk -p`). */
export async function walkN1(ctx: BenchContext, subpath: string): Promise<void> {
  const r = await ctx.ggfs.cli(['replicator', 'walk', '-p', subpath, '-q'], 'n1');
  check(r, `geogridfs replicator walk -p ${subpath}`);
}

export async function replicateWorkload(ctx: BenchContext): Promise<WorkloadResult[]> {
  const rounds = Math.min(ctx.sizes.mixedRounds, ctx.sizes.rounds);
  const s = new Samples();
  const na = ctx.ggfs.unavailable('walk', 'replicate');
  if (na) s.fail(['rep'], 'geogridfs', na);
  let setBytes = 0;
  let setFiles = 0;
  const plan = new RoundPlanner(rounds, ctx.sizes.budgetSec['replicate'] ?? Infinity, ctx.extraRoundsUntil);
  for (let r = 0; r < rounds; r++) {
    if (!plan.anyRuns(TARGETS, r)) break;
    const rel = `rep/r${r}`;
    const spec = await writeSpec(ctx, `rep-r${r}`, mixedSpec(ctx.sizes.mixedBytes, rel));
    setBytes = spec.bytes;
    setFiles = spec.files;
    await io(['mktree', spec.file, ctx.bare, ctx.mergerfs.branches[0]!, ...(na ? [] : [ctx.ggfs.nodes.n1!])]);
    for (const t of orderFor(r, TARGETS)) {
      if (!plan.runs(t, r)) continue;
      const endRound = plan.begin(t);
      if (t === 'geogridfs' && na) continue;
      ctx.log(`  replicate round ${r + 1}/${rounds} on ${t} (${spec.files} files, ${fmtSize(spec.bytes)})`);
      try {
        if (t === 'geogridfs') {
          await walkN1(ctx, `/${rel}`);
          await ctx.ggfs.mustCli(['node', 'set-state', 'n3', 'readonly']);
          try {
            await dropCaches();
            s.add('rep', t, (await ctx.ggfs.timedCli(['replicator', 'replicate', '-q'], 'n2')).ms / 1000);
          } finally {
            await ctx.ggfs.mustCli(['node', 'set-state', 'n3', 'active']);
          }
          const got = await treeBytes(path.join(ctx.ggfs.nodes.n2!, rel));
          if (got.bytes !== spec.bytes || got.files !== spec.files) throw new Error(`replicate copied ${got.files} files / ${got.bytes} bytes of ${spec.files} / ${spec.bytes}`);
        } else {
          const base = t === 'bare' ? ctx.bare : ctx.mergerfs.mount;
          const src = path.join(base, rel);
          const dst = path.join(base, `rep-copy-r${r}`);
          await dropCaches();
          s.add('rep', t, (await timed('sh', ['-c', 'cp -a "$1" "$2" && sync -f "$2"', 'sh', src, dst])) / 1000);
          const got = await treeBytes(dst);
          if (got.bytes !== spec.bytes) throw new Error(`cp -a copied ${got.bytes} of ${spec.bytes} bytes`);
        }
      } catch (err) {
        s.fail(['rep'], t, failReason(err));
      }
      endRound();
    }
    // free the disk: the bare and mergerfs copies are not needed any more (GeoGridFS's stay registered)
    await rm(path.join(ctx.bare, 'rep'), { recursive: true, force: true });
    await rm(path.join(ctx.bare, `rep-copy-r${r}`), { recursive: true, force: true });
    for (const b of ctx.mergerfs.branches) {
      await rm(path.join(b, 'rep'), { recursive: true, force: true });
      await rm(path.join(b, `rep-copy-r${r}`), { recursive: true, force: true });
    }
    await rm(spec.file, { force: true });
  }
  return [
    {
      id: 'replicate',
      title: `replicate ${fmtSize(setBytes)} in ${setFiles} mixed-size files vs cp -a`,
      unit: 's',
      goal: { kind: 'speed', min: 0.8 },
      applies: [...TARGETS],
      tools: { bare: 'cp -a && sync -f', mergerfs: 'cp -a && sync -f (through mergerfs)', geogridfs: 'geogridfs replicator replicate (node n2; n3 readonly)' },
      values: s.values('rep', TARGETS),
    },
  ];
}
