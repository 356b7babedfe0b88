/**
 * Found by the soak: a folder renamed through the mount after a replicator
 * had copied files into it, but before the run fsynced that folder (copies
 * are recorded in batches), made the whole `replicator replicate` run die
 * with "unexpected error: ENOENT ... fsyncDir", dropping the batch's replica
 * records. Fixed in replicate.ts: a folder that moved meanwhile is skipped
 * (the rename itself is recorded as pending work for the node; the fix went
 * in with 3693c97). The interleaving is timing-dependent: this test drives it
 * (copies in flight when the folder moves) and checks the run's exit code;
 * the soak is what caught it.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { faultGrid, randomBytes, sleep, spawnDaemon, underTarget, until } from '../faults/lib.js';

t.test('a folder renamed in the middle of a replicate run', async (t) => {
  const g = await faultGrid(t, { nodes: 2, replicator: { copyBytesPerSec: 4 * 2 ** 20 } });
  const m = await g.mount();
  await fs.mkdir(path.join(m.mountpoint, 'd'));
  const data = new Map<string, Buffer>();
  for (let i = 0; i < 16; i++) {
    const b = randomBytes(256 * 1024);
    data.set(`f${i}`, b);
    await fs.writeFile(path.join(m.mountpoint, 'd', `f${i}`), b);
  }
  const runs = ['n1', 'n2'].map((n) => spawnDaemon(t, `replicate ${n}`, ['replicator', 'replicate', '-c', g.nodeConfigs[n]!]));
  const copying = async () => {
    for (const n of ['n1', 'n2']) if ((await fs.readdir(path.join(g.nodes[n]!, '.ggfs-tmp')).catch(() => [] as string[])).some((x) => x.startsWith('replica-'))) return true;
    return false;
  };
  t.ok(await until(copying, 20_000, 20), 'copies started');
  await sleep(400);
  await fs.rename(path.join(m.mountpoint, 'd'), path.join(m.mountpoint, 'e'));
  for (const r of runs) {
    const { code } = await r.exited;
    t.equal(code, 0, `${r.name} finished without an error`, { output: r.output().slice(-3000) });
  }
  const ok = await until(
    async () => {
      await Promise.all(['n1', 'n2'].map((n) => g.replicate(n)));
      return (await underTarget(g)).length === 0 && (await g.fsck(['--orphans'])).code === 0;
    },
    30_000,
    500,
  );
  t.ok(ok, 'the grid converges: every file at target, fsck --orphans clean');
  for (const [name, b] of data) t.ok((await fs.readFile(path.join(m.mountpoint, 'e', name))).equals(b), `/e/${name} reads back`);
});
