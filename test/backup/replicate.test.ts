/**
 * The backup agent against a real API server, real PostgreSQL and real node
 * folders: mirror byte for byte, nothing new costs one request, changes
 * propagate per deletion policy, local changes are kept aside, the free-space
 * floor and throttling stop a run cleanly without moving the cursor.
 */
import t from 'tap';
import { readFile, stat, writeFile, readdir, lstat, symlink } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, sha256 } from '../api/grid-fixture.js';
import { scratchDir } from '../helpers/db.js';
import { Mirror, diffTrees, runAgent } from './agent-fixture.js';
import { readCursor } from '../../src/backup/local-state.js';
import { setThrottle } from '../../src/meta/backup-nodes.js';

const blob = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * seed + (i >> 8)) % 256));

t.test('first run mirrors the tree; second run downloads nothing with one request', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  const files: Record<string, Buffer> = {
    '/photos/2024/a.jpg': blob(1_500_000, 7),
    '/photos/2024/b.jpg': blob(80_000, 13),
    '/photos/2025/deep/er/c.raw': blob(700_000, 3),
    '/docs/readme.txt': Buffer.from('read me\n'),
    '/empty': Buffer.alloc(0),
    '/names/with space & ünïcode.txt': Buffer.from('odd name'),
  };
  for (const [p, b] of Object.entries(files)) await m.put(p, b);
  const first = await runAgent(g, backup);
  t.equal(first.downloaded, 6);
  t.equal(first.failed, 0);
  t.equal(first.held, 6, 'every file reported held and accepted');
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
  const st = await stat(path.join(backup, '/photos/2024/a.jpg'));
  t.ok(Math.abs(st.mtimeMs - 1_700_000_000_123.456) < 1, `mtime kept (${st.mtimeMs})`);
  t.equal(st.mode & 0o777, 0o644);
  const rows = await g.store.query<{ n: number }>('SELECT count(*)::int AS n FROM backups b JOIN files f ON f.id = b.file_id AND f.version = b.version');
  t.equal(rows[0]!.n, 6, 'the server counts 6 verified backups');
  t.same(await readdir(path.join(backup, '.geogridfs', 'partial')), [], 'no partial files left');

  const second = await runAgent(g, backup);
  t.equal(second.downloaded, 0, 'nothing downloaded');
  t.equal(second.bytes, 0);
  t.equal(second.requests, 1, 'one request: the empty feed page');
  t.equal(second.cursorAfter, first.cursorAfter);
  t.ok(second.seconds < 5, `second run took ${second.seconds.toFixed(3)} s`);
});

for (const policy of ['trash', 'delete', 'keep'] as const) {
  t.test(`new, changed, renamed and deleted files propagate (deletion: ${policy})`, async (t) => {
    const g = await makeGrid(t);
    const root = await scratchDir('bk-');
    const m = new Mirror(g, path.join(root, 'expected'));
    const backup = path.join(root, 'backup');
    await m.put('/a/keep.txt', 'keep');
    await m.put('/a/change.txt', 'version 1');
    await m.put('/a/old-name.bin', blob(200_000, 5));
    await m.put('/a/gone.txt', 'to be deleted');
    await m.put('/b/moved/x.txt', 'moves with its folder');
    await runAgent(g, backup, { deletion: policy });

    await m.put('/a/new.txt', 'brand new');
    await m.put('/a/change.txt', 'version 2, longer');
    await m.mv('/a/old-name.bin', '/c/new-name.bin');
    await m.mv('/b/moved/x.txt', '/b/elsewhere/x.txt');
    await m.del('/a/gone.txt');
    const s = await runAgent(g, backup, { deletion: policy });
    t.equal(s.failed, 0);
    t.equal(s.renamed, 2, 'renames are done locally');
    t.equal(s.downloaded, 2, 'only the new and the changed file are downloaded');
    t.equal(s.bytes, 'brand new'.length + 'version 2, longer'.length, 'no bytes for renames');
    t.equal(s.deleted, 1);
    const gone = path.join(backup, 'a/gone.txt');
    if (policy === 'keep') {
      t.equal(await readFile(gone, 'utf8'), 'to be deleted', 'keep: the deleted file stays');
      await writeFile(path.join(m.expected, 'a/gone.txt'), 'to be deleted');
    } else {
      await t.rejects(stat(gone), { code: 'ENOENT' });
    }
    const trashDir = path.join(backup, '.geogridfs', 'trash', new Date().toISOString().slice(0, 10));
    if (policy === 'trash') t.equal(await readFile(path.join(trashDir, 'a/gone.txt'), 'utf8'), 'to be deleted', 'trash: moved to the dated trash');
    else await t.rejects(stat(path.join(trashDir, 'a/gone.txt')));
    const d = await diffTrees(m.expected, backup);
    t.equal(d.code, 0, `diff -r is clean ${d.out}`);
    const again = await runAgent(g, backup, { deletion: policy });
    t.equal(again.requests, 1, 'then quiet again');
  });
}

t.test('a rename whose moved file comes in a later page; a delete then re-create of the same path', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  await m.put('/r/one.bin', blob(50_000, 9));
  await m.put('/r/two.txt', 'first life');
  await runAgent(g, backup);
  await m.mv('/r/one.bin', '/r/one-renamed.bin');
  await m.del('/r/two.txt');
  await m.put('/r/two.txt', 'second life');
  const s = await runAgent(g, backup, { pageSize: 1 });
  t.equal(s.failed, 0);
  t.equal(s.renamed, 1);
  t.equal(s.bytes, 'second life'.length);
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
});

t.test('a local file that differs is kept aside and reported, never overwritten silently', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  await m.put('/f.txt', 'grid v1');
  await runAgent(g, backup);
  await writeFile(path.join(backup, 'f.txt'), 'edited on the backup host');
  await writeFile(path.join(backup, 'stranger.txt'), 'not from the grid');
  await m.put('/stranger.txt', 'the grid has another one');
  await m.put('/f.txt', 'grid v2');
  const s = await runAgent(g, backup);
  t.equal(s.keptAside, 2);
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
  const asideRoot = path.join(backup, '.geogridfs', 'aside');
  const [when] = await readdir(asideRoot);
  t.equal(await readFile(path.join(asideRoot, when!, 'f.txt'), 'utf8'), 'edited on the backup host');
  t.equal(await readFile(path.join(asideRoot, when!, 'stranger.txt'), 'utf8'), 'not from the grid');
  const probs = await g.store.query<{ kind: string; path: string }>('SELECT kind, path FROM problems ORDER BY path');
  t.same(probs, [{ kind: 'backup-mismatch', path: '/f.txt' }, { kind: 'backup-mismatch', path: '/stranger.txt' }]);
  // an identical local file is adopted without downloading
  const root2 = await scratchDir('bk-');
  await writeFile(path.join(root2, 'f.txt'), 'grid v2');
  await writeFile(path.join(root2, 'stranger.txt'), 'the grid has another one');
  const s2 = await runAgent(g, root2);
  t.equal(s2.adopted, 2);
  t.equal(s2.bytes, 0);
});

t.test('the free-space floor stops the run cleanly; the cursor stays', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const backup = path.join(root, 'backup');
  await g.putFile('/big.bin', blob(100_000, 3));
  const s = await runAgent(g, backup, { minFreeBytes: Number.MAX_SAFE_INTEGER });
  t.match(s.stoppedBy, /free-space floor/);
  t.equal(s.downloaded, 0);
  t.equal(await readCursor(backup), 0, 'cursor not moved past work not done');
  const ok = await runAgent(g, backup);
  t.equal(ok.downloaded, 1);
});

t.test('throttling: 429 outside allowed hours stops the run; concurrency limit is waited out', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const backup = path.join(root, 'backup');
  for (let i = 0; i < 6; i++) await g.putFile(`/t/${i}.bin`, blob(150_000, i + 2));
  const h = new Date().getHours();
  const window = h < 23 ? `[${h + 1},24)` : '[0,23)';
  await setThrottle(g.store, 'offsite1', { allowedHours: window });
  const r = await g.get('/api/v1/content?path=/t/0.bin');
  t.equal(r.status, 429);
  t.ok(Number(r.headers.get('retry-after')) > 0, `Retry-After ${r.headers.get('retry-after')}`);
  t.equal((await r.json()).error.code, 'GGFS_THROTTLED');
  const s = await runAgent(g, backup);
  t.match(s.stoppedBy, /throttled/);
  t.equal(s.downloaded, 0);
  t.equal(await readCursor(backup), 0);

  // one download at a time, 2 MB/s: the agent (4 parallel) gets 429s and waits them out
  await setThrottle(g.store, 'offsite1', { allowedHours: null, maxConcurrent: 1, bytesPerSec: 2_000_000 });
  await g.server.ctx.requestLog.flush();
  const [mark] = await g.store.query<{ id: number }>('SELECT coalesce(max(id), 0)::int AS id FROM api_requests');
  const s2 = await runAgent(g, backup);
  t.equal(s2.downloaded, 6);
  t.equal(s2.failed, 0);
  await g.server.ctx.requestLog.flush();
  const throttled = await g.store.query<{ n: number }>(`SELECT count(*)::int AS n FROM api_requests WHERE status = 429 AND route = '/api/v1/content' AND id > $1`, [mark!.id]);
  t.ok(throttled[0]!.n >= 1, `429s were answered (${throttled[0]!.n})`);
  t.ok(throttled[0]!.n <= 3, 'the agent learns the server\'s limit (1) instead of retrying in a storm');
});

t.test('API URL failover: a dead first URL is skipped', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  await g.putFile('/x.txt', 'x');
  const s = await runAgent(g, path.join(root, 'backup'), { urls: ['http://127.0.0.1:9/', g.base] });
  t.equal(s.downloaded, 1);
});

t.test('symlinks are mirrored as symlinks', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const backup = path.join(root, 'backup');
  const expected = path.join(root, 'expected');
  await g.putFile('/target.txt', 'T');
  await g.store.query(
    `INSERT INTO files (path, folder_id, kind, size, atime_us, mtime_us, ctime_us, symlink_target, class, replica_target, backup_target)
     VALUES ('/link', 1, 'symlink', 10, 0, 0, 0, 'target.txt', 'default', 2, 1)`,
  );
  const { mkdir } = await import('node:fs/promises');
  await mkdir(expected, { recursive: true });
  await writeFile(path.join(expected, 'target.txt'), 'T');
  await symlink('target.txt', path.join(expected, 'link'));
  const s = await runAgent(g, backup);
  t.equal(s.failed, 0);
  t.ok((await lstat(path.join(backup, 'link'))).isSymbolicLink());
  const d = await diffTrees(expected, backup);
  t.equal(d.code, 0, d.out);
  t.equal(sha256(await readFile(path.join(backup, 'link'))), sha256('T'));
});

t.test('a file that changes between the feed and its download is skipped as superseded, then fetched', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  await m.put('/slow.bin', blob(1_000_000, 3));
  await m.put('/quick.txt', 'version 1');
  await setThrottle(g.store, 'offsite1', { bytesPerSec: 250_000 });
  const run = runAgent(g, backup, { concurrency: 1 });
  const partial = path.join(backup, '.geogridfs', 'partial');
  for (let i = 0; i < 400; i++) {
    const names = await readdir(partial).catch(() => [] as string[]);
    if (names.length) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  await m.put('/quick.txt', 'version 2'); // while /slow.bin is still downloading
  const s = await run;
  t.equal(s.failed, 0);
  t.equal(s.superseded, 1, 'the stale version was not fetched');
  t.equal(s.downloaded, 1);
  const s2 = await runAgent(g, backup);
  t.equal(s2.downloaded, 1, 'the new version comes with the next feed page');
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
});

t.test('a mode or mtime change without new content is applied without downloading', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const backup = path.join(root, 'backup');
  await g.putFile('/m.txt', 'same content');
  await runAgent(g, backup);
  await g.store.query(`UPDATE files SET mode = 384, mtime_us = 1600000000000000 WHERE path = '/m.txt'`); // chmod 600, touch
  const s = await runAgent(g, backup);
  t.equal(s.downloaded, 0);
  t.equal(s.bytes, 0);
  const st = await stat(path.join(backup, 'm.txt'));
  t.equal(st.mode & 0o777, 0o600);
  t.equal(st.mtimeMs, 1_600_000_000_000);
  const again = await runAgent(g, backup);
  t.equal(again.requests, 1, 'and the local index knows it is ours');
  const s3 = await runAgent(g, backup);
  t.equal(s3.keptAside, 0);
});

t.test('the mount\'s own rename/unlink (fs-ops): folder rename, rename over a file, unlink', async (t) => {
  const { renamePath, unlinkFile } = await import('../../src/meta/fs-ops.js');
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  await m.put('/dir/a.txt', 'a');
  await m.put('/dir/sub/b.bin', blob(120_000, 7));
  await m.put('/x.txt', 'x wins');
  await m.put('/y.txt', 'y is replaced');
  await m.put('/z.txt', 'z is unlinked');
  await runAgent(g, backup);
  await g.store.txn((tx) => renamePath(tx, '/dir', '/moved', []));
  await g.store.txn((tx) => renamePath(tx, '/x.txt', '/y.txt', []));
  await g.store.txn((tx) => unlinkFile(tx, '/z.txt', []));
  const { rm, rename: mv, mkdir } = await import('node:fs/promises');
  await mkdir(path.join(m.expected, 'moved'), { recursive: true });
  await mv(path.join(m.expected, 'dir/a.txt'), path.join(m.expected, 'moved/a.txt'));
  await mv(path.join(m.expected, 'dir/sub'), path.join(m.expected, 'moved/sub'));
  await rm(path.join(m.expected, 'dir'), { recursive: true });
  await mv(path.join(m.expected, 'x.txt'), path.join(m.expected, 'y.txt'));
  await rm(path.join(m.expected, 'z.txt'));
  const s = await runAgent(g, backup);
  t.equal(s.failed, 0);
  t.equal(s.downloaded, 0, 'nothing downloaded');
  t.equal(s.renamed, 3, 'a, b and x renamed locally');
  t.equal(s.deleted, 2, 'the replaced y and the unlinked z go to the trash');
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
  const trash = path.join(backup, '.geogridfs', 'trash', new Date().toISOString().slice(0, 10));
  t.equal(await readFile(path.join(trash, 'y.txt'), 'utf8'), 'y is replaced');
  t.equal(await readFile(path.join(trash, 'z.txt'), 'utf8'), 'z is unlinked');
});

t.test('a local folder where the grid has a file, and a local file where it has a folder, are kept aside', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(path.join(backup, 'thing/inner'), { recursive: true });
  await writeFile(path.join(backup, 'thing/inner/x.txt'), 'local folder content');
  await writeFile(path.join(backup, 'box'), 'a local file');
  await m.put('/thing', 'the grid has a file here');
  await m.put('/box/in.txt', 'the grid has a folder here');
  const s = await runAgent(g, backup);
  t.equal(s.failed, 0);
  t.equal(s.keptAside, 2);
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
  const asideRoot = path.join(backup, '.geogridfs', 'aside');
  const found: string[] = [];
  for (const when of await readdir(asideRoot)) for (const n of await readdir(path.join(asideRoot, when))) found.push(n);
  t.same(found.sort(), ['box', 'thing']);
});
