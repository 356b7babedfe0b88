/**
 * The database restarts in the middle of writes and replication: the mount
 * keeps serving (reads from the nodes, metadata changes journaled), the
 * journal is replayed when PostgreSQL is back, the `replicator watch`
 * daemons reconnect by themselves, and the grid converges with nothing lost.
 * Uses a PostgreSQL server of its own (embedded, own data folder).
 */
import t from 'tap';
import { scratchDir } from '../helpers/db.js';
import { ensureEmbedded, stopEmbedded } from '../../src/embedded/server.js';
import { FULL, Model, compareTree, type TreeCheck, faultGrid, figures, seeds, sleep, spawnDaemon, treeOk, underTarget, until, whyUnder } from './lib.js';
import { runWriters } from './writers.js';

// One mount in the short form (CI), one and two mounts in the full form; strict in both.
const cases = [{ mounts: 1, known: {} }, ...(FULL ? [{ mounts: 2, known: {} }] : [])];

for (const seed of seeds([21], [21, 22])) for (const { mounts, known } of cases) {
  t.test(`PostgreSQL restart during writes and replication, ${mounts} mount(s) (seed ${seed})`, async (t) => {
    const dataDir = await scratchDir('dbrestart-writes-');
    const { url } = await ensureEmbedded(dataDir);
    t.teardown(() => stopEmbedded(dataDir));
    const g = await faultGrid(t, { nodes: 3, url });
    const a = await g.mount();
    const b = mounts === 2 ? await g.mount() : a;
    const watchers = ['n1', 'n2', 'n3'].map((n) => spawnDaemon(t, `watch ${n}`, ['replicator', 'watch', '--interval', '3', '-c', g.nodeConfigs[n]!]));
    const model = new Model();
    let downMs = 0;
    const chaos = (async () => {
      await sleep(3000);
      const t0 = Date.now();
      await stopEmbedded(dataDir);
      await sleep(4000);
      await ensureEmbedded(dataDir);
      downMs = Date.now() - t0;
    })();
    const [stats] = await Promise.all([runWriters({ mounts: () => (mounts === 2 ? [a.mountpoint, b.mountpoint] : [a.mountpoint]), model, writers: 3, seed, durationMs: 12_000, tolerant: true }), chaos]);
    t.same(stats.errors, [], 'no operation failed while the database was down');
    const converged = await until(
      async () => (await underTarget(g)).length === 0 && (await g.fsck()).code === 0,
      60_000,
      1000,
    );
    t.ok(converged, 'journals replayed, daemons reconnected: every file at target, fsck clean', { ...known, ...(converged ? {} : { why: await whyUnder(g), watchers: watchers.map((w) => w.output().slice(-3000)) }) });
    for (const w of watchers) t.ok(w.alive(), `${w.name} is still running (reconnected by itself)`, { output: w.output().slice(-1500) });
    const full = await g.fsck(['--checksums', '--orphans']);
    t.equal(full.code, 0, 'fsck --checksums --orphans clean', { out: (full.stdout + full.stderr).slice(-3000), ...known });
    let verified = 0;
    for (const m of mounts === 2 ? [a, b] : [a]) {
      const c: TreeCheck | null = await compareTree(m.mountpoint, model).catch(() => null);
      t.ok(c && treeOk(c), `${m.mountpoint} shows the model`, { check: c, ...known });
      t.same(c?.missing ?? ['(tree unreadable)'], [], 'nothing written is lost', known);
      verified += c?.verified ?? 0;
    }
    figures(t, `db restart ${mounts} mount(s) seed ${seed}`, { ops: stats.ops, failedOps: stats.errors.length, dbDownMs: downMs, faults: 1, filesVerified: verified });
  });
}
