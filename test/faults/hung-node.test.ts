/**
 * A hung node, the way a dead NFS server behaves: the mount sees node n1
 * through hangfs (a passthrough FUSE folder), which is frozen with SIGSTOP.
 * Reads of files with another replica keep working within a bounded delay,
 * `ls` of the root returns, new files go elsewhere; after SIGCONT the node
 * catches up (its replicator copies what it missed) and fsck is clean.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startHangFs } from '../helpers/hang.js';
import { Model, compareTree, faultGrid, figures, randomBytes, treeOk, underTarget, until } from './lib.js';

/** Run `fn`, failing if it takes longer than `ms` (generous bound, not a timing assertion). */
async function within<T>(ms: number, fn: () => Promise<T>): Promise<{ ok: boolean; value?: T; err?: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ ok: boolean; err: string }>((r) => (timer = setTimeout(() => r({ ok: false, err: 'timed out' }), ms)));
  const run = fn().then(
    (value) => ({ ok: true, value }),
    (err: unknown) => ({ ok: false, err: (err as NodeJS.ErrnoException).code ?? String(err) }),
  );
  const r = await Promise.race([run, timeout]);
  clearTimeout(timer);
  return r;
}

t.test('a frozen node (SIGSTOP) does not hang the mount', async (t) => {
  const base = await faultGrid(t, { nodes: 3 });
  const hangMnt = path.join(base.dir, 'hang-n1');
  const hang = await startHangFs(base.nodes.n1!, hangMnt);
  t.teardown(() => hang.stop());
  // the mount sees n1 through hangfs; short storage time-outs so the bound below is generous
  const g = base; // the mount's config is rewritten below to see n1 through hangfs
  const { writeConfig } = await import('../helpers/db.js');
  const text = await fs.readFile(g.configFile, 'utf8');
  const body = JSON.parse(text.slice(text.indexOf('= ') + 2, text.lastIndexOf(';\nexport'))) as Record<string, Record<string, unknown>>;
  body.nodes = { ...g.nodes, n1: hangMnt };
  body.storage = { ...body.storage, timeoutMs: 1500, suspectMs: 5000 };
  await writeConfig(g.dir, body);
  const m = await g.mount();

  // files with two replicas (n1 + another), settled by the replicators
  const model = new Model();
  for (let i = 0; i < 24; i++) {
    const v = `/f${i}.bin`;
    const data = randomBytes(1000 + i * 3000);
    await fs.writeFile(path.join(m.mountpoint, v), data);
    model.files.set(v, data);
  }
  for (let round = 0; round < 3; round++) for (const n of ['n1', 'n2', 'n3']) await g.replicate(n);
  t.same(await underTarget(g), [], 'every file has its two copies before the freeze');
  const onN1 = (await fs.readdir(g.nodes.n1!)).filter((n) => n.endsWith('.bin'));
  t.ok(onN1.length > 0, `${onN1.length} files have a copy on n1`);

  hang.freeze();
  let reads = 0;
  // ls of the root returns
  const ls = await within(15_000, () => fs.readdir(m.mountpoint));
  t.ok(ls.ok, `ls of the root returns within 15 s while n1 is frozen (${ls.err ?? 'ok'})`);
  // reads of files with a copy on n1 (and another node) still work
  for (const name of onN1.slice(0, 8)) {
    const v = `/${name}`;
    const r = await within(15_000, () => fs.readFile(path.join(m.mountpoint, v)));
    reads++;
    t.ok(r.ok && (r.value as Buffer).equals(model.files.get(v)!), `${v} reads right within 15 s (${r.err ?? 'ok'})`);
  }
  // new files go elsewhere
  const fresh: string[] = [];
  for (let i = 0; i < 6; i++) {
    const v = `/new${i}.bin`;
    const data = randomBytes(5000);
    const w = await within(15_000, () => fs.writeFile(path.join(m.mountpoint, v), data));
    t.ok(w.ok, `writing ${v} works while n1 is frozen (${w.err ?? 'ok'})`);
    if (w.ok) {
      model.files.set(v, data);
      fresh.push(v);
    }
  }
  const st = await within(15_000, () => fs.stat(path.join(m.mountpoint, '/new0.bin')));
  t.ok(st.ok, 'stat of a new file returns');

  hang.thaw();
  // after the thaw: the replicators bring every file to target; n1 is usable again
  const caught = await until(
    async () => {
      await Promise.all(['n1', 'n2', 'n3'].map((n) => g.replicate(n)));
      return (await underTarget(g)).length === 0 && (await g.fsck()).code === 0;
    },
    60_000,
    1000,
  );
  t.ok(caught, 'after the thaw every file is at target and fsck is clean');
  const c = await compareTree(m.mountpoint, model);
  t.ok(treeOk(c), 'the tree reads back right through the mount', { check: c });
  t.ok(m.child.exitCode === null, 'the mount process is still running');
  figures(t, 'hung node', { frozenReads: reads, writesWhileFrozen: fresh.length, filesVerified: c.verified, faults: 1 });
});
