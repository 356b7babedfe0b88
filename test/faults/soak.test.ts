/**
 * Soak: several writers through two mounts of one grid (create, append,
 * overwrite, rename files and folders, delete, mkdir, rmdir) for a bounded
 * time while two `replicator watch` daemons, cron-style `replicator
 * replicate` runs (one overlapping a watch daemon of the same node) and a
 * backup agent (cron-style `backup replicate` against `geogridfs api`) run.
 * At the end: every file reads back right through both mounts, the daemons
 * converge by themselves (fsck clean, every file at target), `fsck
 * --checksums --orphans` is clean, and the backup folder equals the tree.
 */
import t from 'tap';
import { FULL, Model, backupSetup, compareTree, cronLoop, faultGrid, figures, seeds, spawnDaemon, treeOk, underTarget, until } from './lib.js';
import { runWriters } from './writers.js';

// Every assertion is strict in both forms (the failures once marked todo here are fixed: see test/regressions).
const KNOWN = {};

for (const seed of seeds([1], [1, 2])) {
  t.test(`soak (seed ${seed})`, async (t) => {
    const started = Date.now();
    const g = await faultGrid(t, { nodes: 3 });
    const a = await g.mount();
    const b = await g.mount();
    const watchers = ['n1', 'n2'].map((n) => spawnDaemon(t, `watch ${n}`, ['replicator', 'watch', '--interval', '5', '-c', g.nodeConfigs[n]!]));
    const cronN3 = cronLoop(() => g.replicate('n3'), 1500);
    const cronN1 = cronLoop(() => g.replicate('n1'), 4000); // overlaps n1's watch daemon: the lock makes it exit at once
    const bk = await backupSetup(t, g);
    const api = await bk.startApi();
    const agent = cronLoop(() => bk.replicate(), 2000);

    const model = new Model();
    const stats = await runWriters({ mounts: () => [a.mountpoint, b.mountpoint], model, writers: 4, seed, durationMs: FULL ? 120_000 : 20_000 });
    await cronN1.stop();
    await agent.stop();
    t.same(stats.errors, [], 'no operation failed');
    t.same(stats.badReads, [], 'every read-back through the other mount was right (within a few seconds)');
    t.ok(stats.ops > 100, `${stats.ops} operations ran`);

    // the daemons converge by themselves
    let lastFsck = '';
    const converged = await until(
      async () => {
        const r = await g.fsck();
        lastFsck = r.stdout + r.stderr;
        return r.code === 0 && (await underTarget(g)).length === 0;
      },
      FULL ? 150_000 : 45_000,
      1000,
    );
    // the paths a failure names, with what the writers did to them
    const fsckPaths = (out: string) => out.split('\n').map((l) => l.split('\t')).filter((f) => f.length >= 3 && f[2]!.startsWith('/')).map((f) => f[2]!);
    t.ok(converged, 'the replicators brought the grid to a clean fsck with every file at target', { lastFsck: lastFsck.slice(-3000), trace: converged ? [] : model.related(fsckPaths(lastFsck)), ...KNOWN });
    for (const w of watchers) t.ok(w.alive(), `${w.name} still running`, { output: w.output().slice(-2000) });
    await Promise.all(watchers.map((w) => w.stop()));
    await cronN3.stop();
    // a failed run's log lines name paths ("path":"/w1/…"): what the writers did to them
    const loggedPaths = (out: string | undefined) => [...(out ?? '').matchAll(/"path":"([^"]+)"/g)].map((x) => x[1]!);
    for (const [cron, what] of [
      [cronN3, 'cron-style replicate on n3'],
      [cronN1, 'overlapping replicate on n1'],
    ] as const) {
      const last = cron.stats.lastFailure;
      t.equal(cron.stats.failures, 0, `${what}: ${cron.stats.runs} runs, none failed`, { last, trace: cron.stats.failures ? model.related(loggedPaths(last)) : [], ...KNOWN });
    }

    const full = await g.fsck(['--checksums', '--orphans']);
    t.equal(full.code, 0, 'fsck --checksums --orphans is clean', { out: (full.stdout + full.stderr).slice(-3000), trace: full.code === 0 ? [] : model.related(fsckPaths(full.stdout)), ...KNOWN });
    t.same(await underTarget(g), [], 'every file at its target', KNOWN);

    let verified = 0;
    for (const m of [a, b]) {
      const c = await compareTree(m.mountpoint, model);
      t.ok(treeOk(c), `the tree through ${m.mountpoint} equals the model`, { check: { ...c, verified: undefined }, trace: treeOk(c) ? [] : model.related([...c.missing, ...c.wrong, ...c.extra]), ...KNOWN });
      verified += c.verified;
    }

    const last = await bk.replicate();
    t.equal(last.code, 0, 'a last backup run', { out: last.stdout + last.stderr });
    const bc = await compareTree(bk.folder, model, { dirs: false });
    t.ok(treeOk(bc), 'the backup folder equals the tree', { check: { ...bc, verified: undefined }, ...KNOWN });
    t.equal(agent.stats.failures, 0, `backup agent: ${agent.stats.runs} runs during the soak, none failed`, { last: agent.stats.lastFailure, ...KNOWN });
    const apiErrors = api.output().split('\n').filter((l) => /"level":50/.test(l));
    t.same(apiErrors.slice(0, 5), [], 'the API logged no internal error', KNOWN);

    figures(t, `soak seed ${seed}`, {
      ops: stats.ops,
      byKind: stats.byKind,
      bytesWritten: stats.bytesWritten,
      staleReadsRetried: stats.staleReads,
      files: model.files.size,
      dirs: model.dirs.size,
      filesVerified: verified + bc.verified,
      lost: bc.missing.length,
      replicateRuns: cronN3.stats.runs + cronN1.stats.runs,
      backupRuns: agent.stats.runs + 1,
      seconds: Math.round((Date.now() - started) / 1000),
    });
  });
}
