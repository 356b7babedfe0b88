/**
 * File-system workloads run identically on the three targets through the
 * I/O tool: sequential write/read, and the small-file life cycle (create,
 * stat, ls -l, read, rename, unlink).
 */
import { mkdir, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { RoundPlanner, failReason, io, orderFor, rootOf, Samples, timed, type BenchContext } from '../lib/context.js';
import { dropCaches } from '../lib/proc.js';
import { TARGETS, type TargetId, type WorkloadResult } from '../lib/types.js';

function unavailable(ctx: BenchContext): string | null {
  return ctx.ggfs.unavailable('mount');
}

function fmtBytes(n: number): string {
  return n >= 2 ** 30 ? `${n / 2 ** 30} GiB` : n >= 2 ** 20 ? `${n / 2 ** 20} MiB` : `${n / 1024} KiB`;
}

export async function sequential(ctx: BenchContext): Promise<WorkloadResult[]> {
  const { seqBytes, blockBytes, rounds } = ctx.sizes;
  const s = new Samples();
  const keys = ['write', 'read'];
  const na = unavailable(ctx);
  if (na) s.fail(keys, 'geogridfs', na);
  let cold = true;
  const plan = new RoundPlanner(rounds, ctx.sizes.budgetSec['seq'] ?? Infinity, ctx.extraRoundsUntil);
  for (let r = 0; r < rounds; r++) {
    for (const t of orderFor(r, TARGETS)) {
      if (!plan.runs(t, r)) continue;
      const endRound = plan.begin(t);
      if (t === 'geogridfs' && na) continue;
      const file = path.join(rootOf(ctx, t), `seq-r${r}.bin`);
      try {
        ctx.log(`  sequential round ${r + 1}/${rounds} on ${t}`);
        s.add('write', t, (await io(['seqwrite', file, String(seqBytes), String(blockBytes)])) / 1000);
        cold = (await dropCaches()) && cold;
        s.add('read', t, (await io(['seqread', file, String(blockBytes)])) / 1000);
      } catch (err) {
        s.fail(keys, t, failReason(err));
      } finally {
        await rm(file, { force: true }).catch(() => undefined);
        endRound();
      }
    }
  }
  const size = fmtBytes(seqBytes);
  const tool = `node io seqwrite/seqread (${fmtBytes(blockBytes)} blocks)`;
  const tools = { bare: tool, mergerfs: tool, geogridfs: tool };
  return [
    { id: 'seq-write', title: `sequential write ${size}, fdatasync`, unit: 's', goal: { kind: 'speed', min: 0.8 }, applies: [...TARGETS], tools, values: s.values('write', TARGETS) },
    {
      id: 'seq-read',
      title: `sequential read ${size}, cold cache`,
      unit: 's',
      goal: { kind: 'speed', min: 0.9 },
      applies: [...TARGETS],
      tools,
      values: s.values('read', TARGETS),
      ...(cold ? {} : { note: 'caches could not be dropped (not root): the read was warm' }),
    },
  ];
}

export async function smallFiles(ctx: BenchContext): Promise<WorkloadResult[]> {
  const { smallCount: n, smallBytes: size, rounds } = ctx.sizes;
  const s = new Samples();
  const keys = ['create', 'stat', 'ls', 'read', 'rename', 'unlink'];
  const na = unavailable(ctx);
  if (na) s.fail(keys, 'geogridfs', na);
  const plan = new RoundPlanner(rounds, ctx.sizes.budgetSec['small'] ?? Infinity, ctx.extraRoundsUntil);
  for (let r = 0; r < rounds; r++) {
    for (const t of orderFor(r, TARGETS)) {
      if (!plan.runs(t, r)) continue;
      const endRound = plan.begin(t);
      if (t === 'geogridfs' && na) continue;
      const dir = path.join(rootOf(ctx, t), `small-r${r}`);
      ctx.log(`  small files round ${r + 1}/${rounds} on ${t}`);
      let step = 'create';
      try {
        await mkdir(dir);
        s.add('create', t, (await io(['create', dir, String(n), String(size)])) / 1000);
        step = 'stat';
        await io(['stat', dir, String(n)]); // warm-up: the timed run is "hot"
        s.add('stat', t, (await io(['stat', dir, String(n)])) / 1000);
        step = 'ls';
        s.add('ls', t, (await timed('ls', ['-l', dir], { discardStdout: true })) / 1000);
        step = 'read';
        await dropCaches();
        s.add('read', t, (await io(['read', dir, String(n), String(size)])) / 1000);
        step = 'rename';
        s.add('rename', t, (await io(['rename', dir, String(n)])) / 1000);
        step = 'unlink';
        s.add('unlink', t, (await io(['unlink', dir, String(n), 'g'])) / 1000);
        await rmdir(dir);
      } catch (err) {
        s.fail(keys.slice(keys.indexOf(step)), t, failReason(err));
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      }
      endRound();
    }
  }
  const k = n >= 1000 ? `${n / 1000}k` : String(n);
  const io1 = (what: string) => ({ bare: `node io ${what}`, mergerfs: `node io ${what}`, geogridfs: `node io ${what}` });
  const all: TargetId[] = [...TARGETS];
  return [
    { id: 'small-create', title: `small files: create+write ${size / 1024} KiB+close, ${k}`, unit: 's', goal: { kind: 'speed', min: 0.5 }, applies: all, tools: io1('create'), values: s.values('create', TARGETS) },
    { id: 'small-read', title: `small files: read ${k} × ${size / 1024} KiB, cold cache`, unit: 's', goal: { kind: 'speed', min: 0.8 }, applies: all, tools: io1('read'), values: s.values('read', TARGETS) },
    { id: 'stat-hot', title: `stat of ${k} files, hot`, unit: 's', goal: { kind: 'speed', min: 1.0 }, applies: all, tools: io1('stat'), values: s.values('stat', TARGETS) },
    { id: 'ls-l', title: `ls -l of a ${k}-entry folder`, unit: 's', goal: { kind: 'speed', min: 1.0 }, applies: all, tools: { bare: 'ls -l', mergerfs: 'ls -l', geogridfs: 'ls -l' }, values: s.values('ls', TARGETS) },
    { id: 'rename', title: `rename of ${k} files`, unit: 's', goal: { kind: 'speed', min: 0.5 }, applies: all, tools: io1('rename'), values: s.values('rename', TARGETS) },
    { id: 'unlink', title: `unlink of ${k} files`, unit: 's', goal: { kind: 'speed', min: 0.5 }, applies: all, tools: io1('unlink'), values: s.values('unlink', TARGETS) },
  ];
}
