/**
 * The backup agent tracks what it holds by grid file id (stable across
 * renames), not by path: a folder rename (a subtree move, no per-file rename
 * in the feed), a rename over another file, a delete after a folder rename, a
 * file id that comes back under a new path, the trash and keep policies, and
 * the upgrade from the old index keyed by path. Real PostgreSQL, real HTTP,
 * real files; grid changes go through the mount's own metadata operations.
 */
import t from 'tap';
import { readFile, readdir, writeFile, rm, stat, mkdir, rename, lstat } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, type Grid } from '../api/grid-fixture.js';
import { scratchDir } from '../helpers/db.js';
import { runAgent } from './agent-fixture.js';
import { renamePath, unlinkFile } from '../../src/meta/fs-ops.js';
import { readCursor, writeCursor, type IndexEntry } from '../../src/backup/local-state.js';
import { latestSeq } from '../../src/meta/feed.js';

const today = () => new Date().toISOString().slice(0, 10);

/** Every file under `dir` (the agent's state folder left out) with its content. */
async function treeOf(dir: string, skipState = true): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (skipState && d === dir && e.name === '.geogridfs') continue;
      if (e.isDirectory()) await walk(p);
      else out['/' + path.relative(dir, p)] = await readFile(p, 'utf8');
    }
  };
  await walk(dir);
  return out;
}

const trashOf = (backup: string) => path.join(backup, '.geogridfs', 'trash', today());
const mv = (g: Grid, from: string, to: string) => g.store.txn((tx) => renamePath(tx, from, to, []));
const unlink = (g: Grid, p: string) => g.store.txn((tx) => unlinkFile(tx, p, []));

for (const policy of ['delete', 'trash', 'keep'] as const) {
  t.test(`folder renamed, then a file renamed over a moved one (deletion: ${policy})`, async (t) => {
    const g = await makeGrid(t);
    const backup = path.join(await scratchDir('bk-'), 'backup');
    await g.putFile('/d/a', 'A, first at /d/a');
    await g.putFile('/d/sub/b', 'B moves with its folder');
    await g.putFile('/top3', 'C replaces A');
    t.equal((await runAgent(g, backup, { deletion: policy })).downloaded, 3);

    await mv(g, '/d', '/e');
    await mv(g, '/top3', '/e/a'); // over the moved A
    const s = await runAgent(g, backup, { deletion: policy });
    t.equal(s.failed, 0);
    t.equal(s.downloaded, 0, 'nothing downloaded');
    t.equal(s.bytes, 0);
    t.equal(s.renamed, 2, 'B and C moved locally');
    t.equal(s.deleted, 1, 'A, replaced, handled by the policy');
    t.equal(s.keptAside, 0, 'nothing reported as differing');
    t.same(await treeOf(backup), { '/e/a': 'C replaces A', '/e/sub/b': 'B moves with its folder' }, 'the backup is the grid: nothing left at /d');
    await t.rejects(stat(path.join(backup, 'd')), { code: 'ENOENT' }, 'the emptied old folder is gone');
    if (policy === 'delete') t.same(await treeOf(path.join(backup, '.geogridfs', 'trash')), {}, 'delete: not in the trash either');
    // keep: A was kept at the grid's last path /e/a until C took it: then into the trash, not lost
    else t.equal(await readFile(path.join(trashOf(backup), 'e/a'), 'utf8'), 'A, first at /d/a', `${policy}: A in the dated trash under its last grid path`);
    const again = await runAgent(g, backup, { deletion: policy });
    t.equal(again.requests, 1, 'then quiet');
  });

  t.test(`a file deleted after its folder was renamed (deletion: ${policy})`, async (t) => {
    const g = await makeGrid(t);
    const backup = path.join(await scratchDir('bk-'), 'backup');
    await g.putFile('/d/a', 'A is deleted');
    await g.putFile('/d/b', 'B stays');
    await runAgent(g, backup, { deletion: policy });
    await mv(g, '/d', '/e');
    await unlink(g, '/e/a');
    const s = await runAgent(g, backup, { deletion: policy });
    t.equal(s.failed, 0);
    t.equal(s.downloaded, 0);
    t.equal(s.deleted, 1);
    t.equal(s.renamed, 1);
    const expected: Record<string, string> = { '/e/b': 'B stays' };
    if (policy === 'keep') expected['/e/a'] = 'A is deleted'; // kept where the grid last had it
    t.same(await treeOf(backup), expected);
    if (policy === 'trash') t.equal(await readFile(path.join(trashOf(backup), 'e/a'), 'utf8'), 'A is deleted');
    else t.same(await treeOf(path.join(backup, '.geogridfs', 'trash')), {});
    t.equal((await runAgent(g, backup, { deletion: policy })).requests, 1);

    if (policy === 'keep') {
      // a new grid file at the kept copy's path: the kept copy goes to the trash, quietly
      await g.putFile('/e/a', 'a new A');
      const s2 = await runAgent(g, backup, { deletion: policy });
      t.equal(s2.downloaded, 1);
      t.equal(s2.keptAside, 0, 'a kept copy is not a local change');
      t.same(await treeOf(backup), { '/e/a': 'a new A', '/e/b': 'B stays' });
      t.equal(await readFile(path.join(trashOf(backup), 'e/a'), 'utf8'), 'A is deleted');
      const probs = await g.store.query('SELECT kind, path FROM problems');
      t.same(probs, [], 'no problem reported');
    }
  });
}

t.test('rename over another file, a swap through a temporary name, a rename chain across pages', async (t) => {
  const g = await makeGrid(t);
  const backup = path.join(await scratchDir('bk-'), 'backup');
  await g.putFile('/x', 'x wins');
  await g.putFile('/y', 'y is replaced');
  await g.putFile('/s/one', 'first');
  await g.putFile('/s/two', 'second');
  await g.putFile('/c/1', 'chained');
  await runAgent(g, backup, { deletion: 'delete' });
  await mv(g, '/x', '/y');
  await mv(g, '/s/one', '/s/tmp');
  await mv(g, '/s/two', '/s/one');
  await mv(g, '/s/tmp', '/s/two');
  await mv(g, '/c/1', '/c/2');
  await mv(g, '/c', '/c2');
  await mv(g, '/c2/2', '/c3/3');
  for (const pageSize of [1, 1000]) {
    const copy = path.join(await scratchDir('bk-'), 'backup');
    if (pageSize === 1) await copyDir(backup, copy);
    const s = await runAgent(g, pageSize === 1 ? copy : backup, { deletion: 'delete', pageSize });
    t.equal(s.failed, 0);
    t.equal(s.downloaded, 0, `page size ${pageSize}: nothing downloaded`);
    t.equal(s.deleted, 1, 'y');
    t.ok(s.displaced >= 1, `the swap moved one copy out of the way (${s.displaced})`);
    t.same(await treeOf(pageSize === 1 ? copy : backup), { '/y': 'x wins', '/s/one': 'second', '/s/two': 'first', '/c3/3': 'chained' });
    t.same(await readdir(path.join(pageSize === 1 ? copy : backup, '.geogridfs', 'displaced')).catch(() => []), [], 'nothing left displaced');
  }
});

async function copyDir(from: string, to: string): Promise<void> {
  const { cp } = await import('node:fs/promises');
  await cp(from, to, { recursive: true, preserveTimestamps: true });
  // cp keeps times only to the microsecond: restamp the index entries so the copies count as ours
  const { LocalIndex } = await import('../../src/backup/local-state.js');
  const { stamp } = await import('../../src/backup/local-files.js');
  await rm(path.join(to, '.geogridfs', 'lock'), { force: true });
  const idx = await LocalIndex.load(to);
  for (const e of [...idx.entries()]) idx.set({ ...e, ...(await stamp(path.join(to, e.p))) });
  await idx.close();
}

t.test('a file id that comes back under a new path: renamed and changed; no longer wanted, then wanted again elsewhere', async (t) => {
  const g = await makeGrid(t);
  const backup = path.join(await scratchDir('bk-'), 'backup');
  await g.putFile('/p/f', 'old content');
  await g.putFile('/k/g', 'kept while not wanted');
  await runAgent(g, backup, { deletion: 'keep' });

  await g.renameFile('/p/f', '/q/f');
  await g.putFile('/q/f', 'new content, same file id');
  const s = await runAgent(g, backup, { deletion: 'keep' });
  t.equal(s.failed, 0);
  t.equal(s.renamed, 1, 'our copy moved to the new path first');
  t.equal(s.downloaded, 1, 'then the new content');
  t.equal(s.bytes, 'new content, same file id'.length);
  t.same(await treeOf(backup), { '/q/f': 'new content, same file id', '/k/g': 'kept while not wanted' });

  await g.store.query(`UPDATE files SET backup_target = 0 WHERE path = '/k/g'`);
  const s2 = await runAgent(g, backup, { deletion: 'keep' });
  t.equal(s2.deleted, 1, 'not wanted: the keep policy keeps it');
  t.equal(await readFile(path.join(backup, 'k/g'), 'utf8'), 'kept while not wanted');
  await g.renameFile('/k/g', '/k2/g2');
  await g.store.query(`UPDATE files SET backup_target = 1 WHERE path = '/k2/g2'`);
  const s3 = await runAgent(g, backup, { deletion: 'keep' });
  t.equal(s3.failed, 0);
  t.equal(s3.downloaded, 0, 'wanted again: the kept copy is recognised by its id');
  t.equal(s3.renamed, 1);
  t.same(await treeOf(backup), { '/q/f': 'new content, same file id', '/k2/g2': 'kept while not wanted' });
});

t.test('a local copy changed by someone else is neither moved nor overwritten when its folder is renamed', async (t) => {
  const g = await makeGrid(t);
  const backup = path.join(await scratchDir('bk-'), 'backup');
  await g.putFile('/d/a', 'grid content');
  await runAgent(g, backup);
  await writeFile(path.join(backup, 'd/a'), 'edited on the backup host');
  await mv(g, '/d', '/e');
  const s = await runAgent(g, backup);
  t.equal(s.failed, 0);
  t.equal(s.renamed, 0);
  t.equal(s.downloaded, 1, 'the grid copy is fetched again at the new path');
  t.same(await treeOf(backup), { '/d/a': 'edited on the backup host', '/e/a': 'grid content' });
  const probs = await g.store.query<{ kind: string; path: string }>('SELECT kind, path FROM problems');
  t.same(probs, [{ kind: 'backup-mismatch', path: '/d/a' }]);
  // and a later delete on the grid does not touch the edited copy
  await unlink(g, '/e/a');
  await runAgent(g, backup, { deletion: 'delete' });
  t.same(await treeOf(backup), { '/d/a': 'edited on the backup host' });
});

t.test('upgrade from the old index keyed by path: converted, the feed read once again, nothing downloaded or lost', async (t) => {
  const g = await makeGrid(t);
  const backup = path.join(await scratchDir('bk-'), 'backup');
  const state = path.join(backup, '.geogridfs');
  await g.putFile('/d/a', 'A, missed by the old agent');
  await g.putFile('/d/b', 'B');
  await g.putFile('/x', 'X');
  await runAgent(g, backup, { deletion: 'delete' });
  const v2 = (await readFile(path.join(state, 'index-v2.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as IndexEntry);

  // what the old agent left after the soak's case: it moved B with its folder, missed A's
  // delete (kept at /d/a, cursor past it), and once recorded X's id at a second path too
  await mv(g, '/d', '/e');
  await unlink(g, '/e/a');
  await mkdir(path.join(backup, 'e'));
  await rename(path.join(backup, 'd/b'), path.join(backup, 'e/b'));
  await writeFile(path.join(backup, 'x-copy'), 'X');
  const xs = await lstat(path.join(backup, 'x-copy'), { bigint: true });
  const old = v2.map(({ p, ...e }) => JSON.stringify({ p: p === '/d/b' ? '/e/b' : p, ...e }));
  const x = v2.find((e) => e.p === '/x')!;
  old.push(JSON.stringify({ p: '/x-copy', id: x.id, version: x.version, c: x.c, s: Number(xs.size), m: String(xs.mtimeNs) }));
  old.push(JSON.stringify({ p: '/gone-long-ago', d: 1 }));
  await writeFile(path.join(state, 'index.jsonl'), old.join('\n') + '\n');
  await rm(path.join(state, 'index-v2.jsonl'));
  const latest = await latestSeq(g.store);
  await writeCursor(backup, latest, null);
  const cursorState = JSON.parse(await readFile(path.join(state, 'cursor.json'), 'utf8')) as { generation: string | null };
  t.equal(cursorState.generation, null);

  const s = await runAgent(g, backup, { deletion: 'delete' });
  t.equal(s.failed, 0);
  t.ok(s.rescanned, 'the feed was read again from the start');
  t.equal(s.downloaded, 0, 'nothing downloaded');
  t.equal(s.bytes, 0);
  t.equal(s.deleted, 1, 'the delete the old agent missed is applied');
  t.same(await treeOf(backup), { '/e/b': 'B', '/x': 'X', '/x-copy': 'X' }, 'A gone; the untracked duplicate is left in place, not deleted');
  t.equal(await readCursor(backup), latest);
  const names = await readdir(state);
  t.ok(names.includes('index-v2.jsonl') && names.includes('index.jsonl.v1-migrated') && !names.includes('index.jsonl'), names.join(' '));
  const again = await runAgent(g, backup, { deletion: 'delete' });
  t.equal(again.requests, 1, 'then quiet');
  t.equal(again.rescanned, false);
});

t.test('a copy moved out of the way by a run that stopped before saving its index is still found', async (t) => {
  const g = await makeGrid(t);
  const backup = path.join(await scratchDir('bk-'), 'backup');
  const a = await g.putFile('/a', 'A');
  await runAgent(g, backup, { deletion: 'delete' });
  // what a run leaves when it stops between displacing /a and flushing its index
  await mkdir(path.join(backup, '.geogridfs', 'displaced'), { recursive: true });
  await rename(path.join(backup, 'a'), path.join(backup, '.geogridfs', 'displaced', String(a.id)));
  await mv(g, '/a', '/b');
  const s = await runAgent(g, backup, { deletion: 'delete' });
  t.equal(s.failed, 0);
  t.equal(s.downloaded, 0);
  t.equal(s.renamed, 1);
  t.same(await treeOf(backup), { '/b': 'A' });
  t.same(await readdir(path.join(backup, '.geogridfs', 'displaced')), []);
});
