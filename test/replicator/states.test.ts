import t from 'tap';
import { readdir, rm, writeFile, readFile, rename, mkdir, utimes } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, sampleTree, writeTree, listTree, replicaState, settle, assertDisksMatchMetadata, fileExists } from './grid.js';

t.test('scrub, pending deletes/renames, dead and drain nodes', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1', 'n2', 'n3', 'n4'] });
  const tree = sampleTree(2 ** 20);
  for (let i = 0; i < 12; i++) tree[`set/f${i}.txt`] = `file ${i}\n`.repeat(100 + i);
  await writeTree(g.roots.n1!, tree);
  t.equal((await g.run('n1', ['replicator', 'walk'])).code, 0);
  const all = ['n1', 'n2', 'n3', 'n4'];
  await settle(g, all);
  for (const s of await replicaState(g.store)) t.equal(s.nodes.length, 2, `${s.path} at target`);

  t.test('scrub finds a corrupted replica; replicate restores it from a good copy', async (t) => {
    const victim = (await replicaState(g.store)).find((s) => s.path === '/big/large.bin')!;
    const bad = victim.nodes.find((n) => n !== 'n1') ?? victim.nodes[0]!;
    const file = path.join(g.roots[bad]!, 'big/large.bin');
    const bytes = await readFile(file);
    bytes[1000] = bytes[1000]! ^ 0xff; // same size, one byte flipped, in a file not written for a while: bit rot
    await writeFile(file, bytes);
    await utimes(file, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));

    const clean = await g.run(victim.nodes.find((n) => n !== bad)!, ['replicator', 'scrub']);
    t.equal(clean.code, 0, clean.stdout + clean.stderr);
    const r = await g.run(bad, ['replicator', 'scrub']);
    t.equal(r.code, 1, 'scrub reports the problem');
    t.match(r.stdout, /1 corrupt \(1 quarantined/);
    const problems = await g.store.query<{ kind: string; node: string }>(
      `SELECT p.kind, n.name AS node FROM problems p JOIN nodes n ON n.id = p.node_id WHERE p.path = '/big/large.bin' AND resolved_at IS NULL`,
    );
    t.same(problems, [{ kind: 'corrupt-replica', node: bad }]);
    t.notOk((await replicaState(g.store)).find((s) => s.path === '/big/large.bin')!.nodes.includes(bad), 'it stops counting');
    const q = path.join(g.roots[bad]!, '.ggfs-quarantine');
    t.ok(await fileExists(q), 'bytes quarantined, not deleted');
    await rm(q, { recursive: true });

    await settle(g, all);
    const healed = (await replicaState(g.store)).find((s) => s.path === '/big/large.bin')!;
    t.equal(healed.nodes.length, 2, 'back at target');
    await assertDisksMatchMetadata(t, g);
  });

  t.test('a copy being rewritten right now (recent mtime) is not taken for corrupt', async (t) => {
    const victim = (await replicaState(g.store)).find((s) => s.path === '/a.txt')!;
    const file = path.join(g.roots[victim.nodes[0]!]!, 'a.txt');
    const original = await readFile(file);
    await writeFile(file, 'alph\n'); // a writer in the middle of its work
    const r = await g.run(victim.nodes[0]!, ['replicator', 'scrub']);
    t.equal(r.code, 0, r.stdout);
    t.match(r.stdout, /1 changing/);
    t.ok(await fileExists(file), 'left in place');
    await writeFile(file, original);
  });

  t.test('the only copy of a file is never quarantined', async (t) => {
    await writeTree(g.roots.n1!, { 'solo.txt': 'only here' });
    await g.run('n1', ['replicator', 'walk', '-p', '/solo.txt']);
    const solo = path.join(g.roots.n1!, 'solo.txt');
    await writeFile(solo, 'ONLY HERE');
    await utimes(solo, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
    const r = await g.run('n1', ['replicator', 'scrub']);
    t.equal(r.code, 1);
    t.match(r.stdout, /1 only copies kept/);
    t.equal(await readFile(path.join(g.roots.n1!, 'solo.txt'), 'utf8'), 'ONLY HERE', 'left in place');
    t.same((await replicaState(g.store)).find((s) => s.path === '/solo.txt')!.nodes, ['n1'], 'and still listed');
    // clean up: restore the bytes so later checks hold
    await writeFile(path.join(g.roots.n1!, 'solo.txt'), 'only here');
    await settle(g, all);
  });

  t.test('pending deletes and renames made while a node was down are applied when it returns', async (t) => {
    // the node that was "down": the one (besides n1) holding the most files
    const counts = await g.store.query<{ name: string; n: number }>(
      `SELECT n.name, count(*)::int AS n FROM replicas r JOIN nodes n ON n.id = r.node_id WHERE n.name <> 'n1' GROUP BY n.name ORDER BY 2 DESC, 1 LIMIT 1`,
    );
    const down = counts[0]!.name;
    const downId = await g.nodeId(down);
    const held = await g.store.query<{ path: string }>(
      `SELECT f.path FROM replicas r JOIN files f ON f.id = r.file_id WHERE r.node_id = $1 AND f.deleted_at IS NULL ORDER BY f.path`,
      [downId],
    );
    t.ok(held.length >= 2, `${down} holds ${held.length} files`);
    const [gone, moved] = [held[0]!.path, held[1]!.path];
    const movedTo = '/renamed/' + path.posix.basename(moved) + '.moved';
    const up = all.filter((n) => n !== down);
    const upIds = await Promise.all(up.map((n) => g.nodeId(n)));
    // what the mount does with that node unreachable: bytes changed on the reachable nodes, metadata in one transaction
    for (const n of up) {
      await rm(path.join(g.roots[n]!, gone), { force: true });
      if (await fileExists(path.join(g.roots[n]!, moved))) {
        await mkdir(path.join(g.roots[n]!, 'renamed'), { recursive: true });
        await rename(path.join(g.roots[n]!, moved), path.join(g.roots[n]!, movedTo));
      }
    }
    await g.store.txn(async (tx) => {
      const f = await tx.query<{ id: number }>(`UPDATE files SET deleted_at = now(), folder_id = NULL WHERE path = $1 AND deleted_at IS NULL RETURNING id`, [gone]);
      await tx.query('DELETE FROM replicas WHERE file_id = $1 AND node_id = ANY($2::int[])', [f[0]!.id, upIds]);
      const folder = await tx.query<{ id: number }>(
        `INSERT INTO folders (path, parent_id, mtime_us, ctime_us) VALUES ('/renamed', 1, 0, 0) RETURNING id`,
      );
      const m = await tx.query<{ id: number }>(`UPDATE files SET path = $2, folder_id = $3 WHERE path = $1 AND deleted_at IS NULL RETURNING id`, [moved, movedTo, folder[0]!.id]);
      await tx.query('UPDATE replicas SET path = $2 WHERE file_id = $1 AND node_id = ANY($3::int[])', [m[0]!.id, movedTo, upIds]);
    });
    const work = await g.store.query<{ node_id: number }>('SELECT node_id FROM node_work');
    t.same(work.map((w) => w.node_id), [downId, downId], 'pending work only for the node that was down');
    await settle(g, up);
    t.ok(await fileExists(path.join(g.roots[down]!, gone)), 'still there while the node is away');

    const back = await g.run(down, ['replicator', 'replicate']);
    t.equal(back.code, 0, back.stdout + back.stderr);
    t.match(back.stdout, /1 deletes and 1 renames applied/);
    t.notOk(await fileExists(path.join(g.roots[down]!, gone)), 'deleted on return');
    t.ok(await fileExists(path.join(g.roots[down]!, movedTo)), 'renamed on return');
    t.equal((await g.store.query('SELECT 1 FROM node_work')).length, 0);
    await settle(g, all);
    await assertDisksMatchMetadata(t, g);
  });

  t.test('a dead node\'s files are re-replicated', async (t) => {
    const n2files = (await replicaState(g.store)).filter((s) => s.nodes.includes('n2')).map((s) => s.path);
    t.ok(n2files.length > 0);
    t.equal((await g.run('n1', ['node', 'set-state', 'n2', 'dead'])).code, 0);
    await settle(g, ['n1', 'n3', 'n4']);
    for (const s of await replicaState(g.store)) {
      t.equal(s.nodes.length, 2, `${s.path}: ${s.nodes.join(',')}`);
      t.notOk(s.nodes.includes('n2'));
    }
    t.ok((await readdir(g.roots.n2!)).length > 0, 'the dead node\'s folder is left alone');
  });

  t.test('a drain node ends empty with every file still at target', async (t) => {
    t.equal((await g.run('n1', ['node', 'set-state', 'n3', 'drain'])).code, 0);
    await settle(g, ['n1', 'n3', 'n4']);
    t.same(await listTree(g.roots.n3!), {}, 'n3 is empty');
    const n3 = await g.nodeId('n3');
    t.equal((await g.store.query('SELECT 1 FROM replicas WHERE node_id = $1', [n3])).length, 0, 'no replica rows left on n3');
    for (const s of await replicaState(g.store)) t.same(s.nodes, ['n1', 'n4'], `${s.path} at target on the remaining nodes`);
    await assertDisksMatchMetadata(t, g);
    const fsck = await g.run('n1', ['fsck', '--checksums']);
    t.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });
});
