/** Placement and read policies, the metadata cache, the journal, and the errno mapper (pure or local-disk only). */
import t from 'tap';
import os from 'node:os';
import path from 'node:path';
import { PLACEMENT, READ } from '../../src/fs/policies/index.js';
import { MetaCache } from '../../src/fs/cache.js';
import { Journal } from '../../src/fs/journal.js';
import { FsError, toErrno } from '../../src/fs/errors.js';
import { BadPathError } from '../../src/util/vpath.js';
import { scratchDir } from '../helpers/db.js';
import type { StorageNode } from '../../src/storage/node-io.js';

const node = (name: string): StorageNode => ({ id: 1, name, root: `/srv/${name}`, state: 'active' });
const cands = [
  { node: node('a'), freeBytes: 10, parentExists: false },
  { node: node('b'), freeBytes: 30, parentExists: true },
  { node: node('c'), freeBytes: 20, parentExists: false },
];

t.test('placement policies', async (t) => {
  t.same(PLACEMENT.mfs(cands, '/x').map((c) => c.node.name), ['b', 'c', 'a'], 'mfs: most free first');
  t.same(PLACEMENT.lfs(cands, '/x').map((c) => c.node.name), ['a', 'c', 'b'], 'lfs: least free first');
  t.same(PLACEMENT.ff(cands, '/x').map((c) => c.node.name), ['a', 'b', 'c'], 'ff: config order');
  t.same(PLACEMENT.epff(cands, '/x').map((c) => c.node.name), ['b', 'a', 'c'], 'epff: existing parent first');
  t.same(PLACEMENT.rand(cands, '/x').map((c) => c.node.name).sort(), ['a', 'b', 'c'], 'rand: a permutation');
});

t.test('read policies', async (t) => {
  const reps = ['a', 'b', 'c'].map((n) => ({ node: node(n), path: '/f' }));
  const firsts = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const order = READ.spread(reps, `/file${i}`);
    t.equal(order.length, 3);
    firsts.add(order[0]!.node.name);
    t.same(READ.spread(reps, `/file${i}`), order, 'spread is stable per path');
  }
  t.equal(firsts.size, 3, 'spread uses every replica across paths');
  t.same(READ.ff(reps, '/f').map((r) => r.node.name), ['a', 'b', 'c']);
});

t.test('cache: bounded, negative entries, subtree invalidation', async (t) => {
  const c = new MetaCache(3, 60_000, 60_000);
  c.set('/a', null);
  t.equal(c.get('/a'), null, 'negative entry');
  t.equal(c.get('/b'), undefined, 'miss');
  c.set('/d', null);
  c.set('/d/x', null);
  c.set('/d/y', null);
  t.equal(c.stats().size, 3, 'bounded');
  t.equal(c.get('/a'), undefined, 'least recently used dropped');
  c.invalidateSubtree('/d');
  t.equal(c.stats().size, 0, 'subtree dropped');
  const z = new MetaCache(10, 60_000, 0);
  z.set('/n', null);
  t.equal(z.get('/n'), undefined, 'negative TTL 0 caches nothing');
});

t.test('journal: append, replay in order, stop on error and keep the rest', async (t) => {
  const dir = await scratchDir('journal-');
  const j = new Journal(path.join(dir, 'j.jsonl'));
  await j.append({ op: 'mkdir', path: '/a', mode: 0o755, uid: 0, gid: 0 });
  await j.append({ op: 'rmdir', path: '/a' });
  await j.append({ op: 'unlink', path: '/b', nodes: ['n1'] });
  t.equal(await new Journal(j.file).load(), 3, 'durable across instances');
  const seen: string[] = [];
  let fail = true;
  const apply = async (r: { op: string }) => {
    if (r.op === 'unlink' && fail) throw new Error('db down');
    seen.push(r.op);
  };
  await t.rejects(j.replay(apply));
  t.same(seen, ['mkdir', 'rmdir'], 'applied in order up to the failure');
  t.equal((await j.readAll()).length, 1, 'the rest kept');
  fail = false;
  t.equal(await j.replay(apply), true, 'replays the rest');
  t.equal((await j.readAll()).length, 0, 'empty');
});

t.test('toErrno', async (t) => {
  const E = os.constants.errno;
  t.equal(toErrno(new FsError('ENOTEMPTY')), E.ENOTEMPTY);
  t.equal(toErrno(Object.assign(new Error('x'), { code: 'ENOSPC' })), E.ENOSPC, 'Node fs codes pass');
  t.equal(toErrno(Object.assign(new Error('x'), { code: '23505' })), E.EEXIST, 'SQLSTATE unique violation');
  t.equal(toErrno(Object.assign(new Error('x'), { code: '57014' })), E.ETIMEDOUT, 'statement timeout');
  t.equal(toErrno(new BadPathError('long', 'ENAMETOOLONG')), E.ENAMETOOLONG);
  t.equal(toErrno(new Error('surprise')), E.EIO, 'unknown -> EIO');
});
