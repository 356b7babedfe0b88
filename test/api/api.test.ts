/**
 * The central API against a real PostgreSQL and real node folders: feed,
 * listing, content with Range/ETag/If-Range, held reports checked against
 * the current version, problems, stats, metrics, health; every bad input a
 * clear 4xx that changes nothing; tokens never stored or logged in clear.
 */
import t from 'tap';
import { makeGrid, sha256 } from './grid-fixture.js';
import { revokeBackupNode } from '../../src/meta/backup-nodes.js';

const big = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31) % 251));

t.test('feed, listing, content, held, problems, stats, metrics', async (t) => {
  const g = await makeGrid(t);
  const a = await g.putFile('/photos/a.jpg', big);
  await g.putFile('/photos/sub/b.txt', 'hello');
  await g.putFile('/c.txt', '');

  // feed: everything after 0, then paged
  const feed = await (await g.get('/api/v1/feed?after=0')).json();
  t.equal(feed.items.length, 3);
  t.same(feed.items.map((i: { path: string }) => i.path), ['/photos/a.jpg', '/photos/sub/b.txt', '/c.txt']);
  t.equal(feed.items[0].checksum, a.checksum);
  t.equal(feed.items[0].mtimeUs, 1_700_000_000_123_456);
  t.equal(feed.settled, true);
  const p1 = await (await g.get('/api/v1/feed?after=0&limit=2')).json();
  t.equal(p1.items.length, 2);
  t.equal(p1.more, true);
  const p2 = await (await g.get(`/api/v1/feed?after=${p1.next}&limit=2`)).json();
  t.same(p2.items.map((i: { path: string }) => i.path), ['/c.txt']);
  t.equal(p2.more, false);
  const empty = await (await g.get(`/api/v1/feed?after=${p2.next}`)).json();
  t.same(empty.items, [], 'nothing after the last cursor');

  // listing
  const list = await (await g.get('/api/v1/list?path=/photos')).json();
  t.same(list.folders, ['sub']);
  t.same(list.files.map((f: { name: string }) => f.name), ['a.jpg']);
  const l1 = await (await g.get('/api/v1/list?path=/photos&limit=1')).json();
  t.equal(l1.nextAfter, 'a.jpg');
  const l2 = await (await g.get('/api/v1/list?path=/photos&limit=1&after=a.jpg')).json();
  t.same(l2.folders, ['sub']);

  // content: whole, range, If-Range
  const whole = await g.get('/api/v1/content?path=/photos/a.jpg');
  t.equal(whole.status, 200);
  t.equal(whole.headers.get('etag'), `"${a.checksum}"`);
  t.equal(sha256(Buffer.from(await whole.arrayBuffer())), a.checksum);
  const part = await g.get('/api/v1/content?path=/photos/a.jpg', { range: 'bytes=1000-1999', 'if-range': `"${a.checksum}"` });
  t.equal(part.status, 206);
  t.equal(part.headers.get('content-range'), `bytes 1000-1999/${big.length}`);
  t.same(Buffer.from(await part.arrayBuffer()), big.subarray(1000, 2000));
  const suffix = await g.get('/api/v1/content?path=/photos/a.jpg', { range: 'bytes=-10' });
  t.same(Buffer.from(await suffix.arrayBuffer()), big.subarray(big.length - 10));
  const stale = await g.get('/api/v1/content?path=/photos/a.jpg', { range: 'bytes=1000-', 'if-range': '"0000"' });
  t.equal(stale.status, 200, 'If-Range with another ETag: the whole file');
  t.equal((await stale.arrayBuffer()).byteLength, big.length);
  const changed = await g.get('/api/v1/content?path=/photos/a.jpg', { 'if-match': `"${'0'.repeat(64)}"` });
  t.equal(changed.status, 412);
  await changed.arrayBuffer();
  const zero = await g.get('/api/v1/content?path=/c.txt');
  t.equal(zero.status, 200);
  t.equal((await zero.arrayBuffer()).byteLength, 0);

  // held: only the current version with the right checksum counts
  const held = await (
    await fetch(g.base + '/api/v1/held', {
      method: 'POST',
      headers: { authorization: `Bearer ${g.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ items: [{ id: a.id, version: a.version, checksum: a.checksum }, { id: a.id + 1, version: 1, checksum: 'f'.repeat(64) }, { id: 999999, version: 1, checksum: a.checksum }] }),
    })
  ).json();
  t.equal(held.accepted, 1);
  t.same(held.rejected.map((r: { reason: string }) => r.reason).sort(), ['checksum-mismatch', 'unknown']);
  const backups = await g.store.query<{ file_id: number }>('SELECT file_id FROM backups');
  t.same(backups.map((b) => b.file_id), [a.id], 'only the verified file counts as backed up');

  // problems
  const pr = await fetch(g.base + '/api/v1/problems', {
    method: 'POST',
    headers: { authorization: `Bearer ${g.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ items: [{ kind: 'backup-unknown-file', path: '/x/y', detail: 'seen locally' }] }),
  });
  t.equal(pr.status, 200);
  const probs = await g.store.query<{ kind: string; path: string; backup_node_id: number }>('SELECT kind, path, backup_node_id FROM problems');
  t.same(probs, [{ kind: 'backup-unknown-file', path: '/x/y', backup_node_id: g.backupNode.id }]);

  // stats, metrics, health (loopback: no login)
  const stats = await (await fetch(g.base + '/api/v1/stats')).json();
  t.equal(stats.files, 3);
  t.equal(stats.backupNodes[0].held, 1);
  const metrics = await (await fetch(g.base + '/metrics')).text();
  t.match(metrics, /^geogridfs_files 3$/m);
  t.match(metrics, /^geogridfs_backup_held_files\{backup_node="offsite1"\} 1$/m);
  t.equal((await fetch(g.base + '/healthz')).status, 200);
  t.equal((await fetch(g.base + '/readyz')).status, 200);

  // the request log has who/route/status/bytes
  await g.server.ctx.requestLog.flush();
  const logged = await g.store.query<{ route: string; status: number; bytes: number; backup_node_id: number | null }>(
    `SELECT route, status, bytes, backup_node_id FROM api_requests WHERE route = '/api/v1/content' AND status = 200 ORDER BY id LIMIT 1`,
  );
  t.same(logged[0], { route: '/api/v1/content', status: 200, bytes: big.length, backup_node_id: g.backupNode.id });
});

t.test('failover to another replica when the first is unreadable; 503 when none is', async (t) => {
  const g = await makeGrid(t);
  const a = await g.putFile('/f.bin', big);
  // n1 (tried first) holds a wrong-sized copy: skipped, n2 serves
  const { writeFile, rm } = await import('node:fs/promises');
  await writeFile(g.nodes.n1 + '/f.bin', 'short');
  const r = await g.get('/api/v1/content?path=/f.bin');
  t.equal(r.status, 200);
  t.equal(sha256(Buffer.from(await r.arrayBuffer())), a.checksum);
  await rm(g.nodes.n2 + '/f.bin');
  const none = await g.get('/api/v1/content?path=/f.bin');
  t.equal(none.status, 503);
  t.equal((await none.json()).error.code, 'GGFS_NO_REPLICA');
  let kinds: string[] = [];
  for (let i = 0; i < 100 && kinds.length < 2; i++) {
    // the replica's problem is recorded beside the request, not before the answer
    kinds = (await g.store.query<{ kind: string }>('SELECT DISTINCT kind FROM problems ORDER BY kind')).map((p) => p.kind);
    if (kinds.length < 2) await new Promise((r) => setTimeout(r, 50));
  }
  t.same(kinds, ['missing-replica', 'missing-source'], 'unreadable replicas are recorded as problems');
});

t.test('a symlink pointing outside the node root is refused', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1'] });
  await g.putFile('/secret-link', 'x'.repeat(10));
  const { rm, symlink, writeFile } = await import('node:fs/promises');
  await writeFile(g.dir + '/outside.txt', 'y'.repeat(10));
  await rm(g.nodes.n1 + '/secret-link');
  await symlink(g.dir + '/outside.txt', g.nodes.n1 + '/secret-link');
  const r = await g.get('/api/v1/content?path=/secret-link');
  t.equal(r.status, 503, 'the only replica resolves outside the root: not served');
  t.notMatch(await r.text(), /y{10}/);
});

t.test('every bad input is a clear 4xx and changes nothing', async (t) => {
  const g = await makeGrid(t);
  const a = await g.putFile('/a.txt', 'hello world');
  const before = async () => (await g.store.query(`SELECT (SELECT count(*) FROM backups) AS b, (SELECT count(*) FROM problems) AS p, (SELECT max(seq) FROM files) AS s, (SELECT cursor_seq FROM backup_nodes) AS c`))[0];
  const snap = await before();
  const auth = { authorization: `Bearer ${g.token}` };
  const json = { ...auth, 'content-type': 'application/json' };
  const cases: [string, string, RequestInit, number, string][] = [
    ['no token', '/api/v1/feed', {}, 401, 'GGFS_UNAUTHORIZED'],
    ['malformed token', '/api/v1/feed', { headers: { authorization: 'Bearer nope' } }, 401, 'GGFS_UNAUTHORIZED'],
    ['wrong secret', '/api/v1/feed', { headers: { authorization: `Bearer ${g.token.slice(0, -4)}AAAA` } }, 401, 'GGFS_UNAUTHORIZED'],
    ['basic auth', '/api/v1/feed', { headers: { authorization: 'Basic Zm9vOmJhcg==' } }, 401, 'GGFS_UNAUTHORIZED'],
    ['bad cursor (text)', '/api/v1/feed?after=abc', { headers: auth }, 400, 'GGFS_BAD_CURSOR'],
    ['bad cursor (negative)', '/api/v1/feed?after=-5', { headers: auth }, 400, 'GGFS_BAD_CURSOR'],
    ['bad cursor (huge)', '/api/v1/feed?after=99999999999999999999999', { headers: auth }, 400, 'GGFS_BAD_CURSOR'],
    ['bad cursor (float)', '/api/v1/feed?after=1.5', { headers: auth }, 400, 'GGFS_BAD_CURSOR'],
    ['huge limit', '/api/v1/feed?limit=100000000000000000000', { headers: auth }, 400, 'GGFS_BAD_REQUEST'],
    ['negative limit', '/api/v1/feed?limit=-1', { headers: auth }, 400, 'GGFS_BAD_REQUEST'],
    ['limit not a number', '/api/v1/feed?limit=ten', { headers: auth }, 400, 'GGFS_BAD_REQUEST'],
    ['unknown query field', '/api/v1/feed?after=0&evil=1', { headers: auth }, 400, 'GGFS_BAD_REQUEST'],
    ['dot-dot path', '/api/v1/content?path=/../etc/passwd', { headers: auth }, 400, 'GGFS_BAD_PATH'],
    ['dot-dot inside', '/api/v1/content?path=/a/../../etc/passwd', { headers: auth }, 400, 'GGFS_BAD_PATH'],
    ['relative path', '/api/v1/content?path=etc/passwd', { headers: auth }, 400, 'GGFS_BAD_PATH'],
    ['absolute host path', '/api/v1/content?path=' + encodeURIComponent(g.nodes.n1 + '/a.txt'), { headers: auth }, 404, 'GGFS_NOT_FOUND'],
    ['NUL in path', '/api/v1/content?path=/a.txt%00.jpg', { headers: auth }, 400, 'GGFS_BAD_PATH'],
    ['empty path', '/api/v1/content?path=', { headers: auth }, 400, 'GGFS_BAD_PATH'],
    ['missing path', '/api/v1/content', { headers: auth }, 400, 'GGFS_BAD_REQUEST'],
    ['no such file', '/api/v1/content?path=/nope', { headers: auth }, 404, 'GGFS_NOT_FOUND'],
    ['list dot-dot', '/api/v1/list?path=/..', { headers: auth }, 400, 'GGFS_BAD_PATH'],
    ['list no such folder', '/api/v1/list?path=/nope', { headers: auth }, 404, 'GGFS_NOT_FOUND'],
    ['list after with slash', '/api/v1/list?path=/&after=a/b', { headers: auth }, 400, 'GGFS_BAD_REQUEST'],
    ['bad Range syntax', '/api/v1/content?path=/a.txt', { headers: { ...auth, range: 'bytes=abc' } }, 400, 'GGFS_BAD_RANGE'],
    ['Range wrong unit', '/api/v1/content?path=/a.txt', { headers: { ...auth, range: 'items=0-1' } }, 400, 'GGFS_BAD_RANGE'],
    ['multi Range', '/api/v1/content?path=/a.txt', { headers: { ...auth, range: 'bytes=0-1,3-4' } }, 400, 'GGFS_BAD_RANGE'],
    ['negative Range', '/api/v1/content?path=/a.txt', { headers: { ...auth, range: 'bytes=-1-5' } }, 400, 'GGFS_BAD_RANGE'],
    ['reversed Range', '/api/v1/content?path=/a.txt', { headers: { ...auth, range: 'bytes=5-1' } }, 400, 'GGFS_BAD_RANGE'],
    ['huge Range', '/api/v1/content?path=/a.txt', { headers: { ...auth, range: 'bytes=99999999999999999999-' } }, 400, 'GGFS_BAD_RANGE'],
    ['Range past the end', '/api/v1/content?path=/a.txt', { headers: { ...auth, range: 'bytes=100-' } }, 416, 'GGFS_RANGE_NOT_SATISFIABLE'],
    ['malformed JSON', '/api/v1/held', { method: 'POST', headers: json, body: '{"items": [' }, 400, 'GGFS_BAD_REQUEST'],
    ['empty JSON body', '/api/v1/held', { method: 'POST', headers: json, body: '' }, 400, 'GGFS_BAD_REQUEST'],
    ['not JSON', '/api/v1/held', { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: 'hi' }, 415, 'GGFS_UNSUPPORTED_MEDIA_TYPE'],
    ['wrong type', '/api/v1/held', { method: 'POST', headers: json, body: JSON.stringify({ items: 'all' }) }, 400, 'GGFS_BAD_REQUEST'],
    ['string id', '/api/v1/held', { method: 'POST', headers: json, body: JSON.stringify({ items: [{ id: 'x', version: 1, checksum: a.checksum }] }) }, 400, 'GGFS_BAD_REQUEST'],
    ['huge id', '/api/v1/held', { method: 'POST', headers: json, body: JSON.stringify({ items: [{ id: 1e300, version: 1, checksum: a.checksum }] }) }, 400, 'GGFS_BAD_REQUEST'],
    ['negative version', '/api/v1/held', { method: 'POST', headers: json, body: JSON.stringify({ items: [{ id: a.id, version: -1, checksum: a.checksum }] }) }, 400, 'GGFS_BAD_REQUEST'],
    ['bad checksum', '/api/v1/held', { method: 'POST', headers: json, body: JSON.stringify({ items: [{ id: a.id, version: 1, checksum: 'XYZ' }] }) }, 400, 'GGFS_BAD_REQUEST'],
    ['unknown field', '/api/v1/held', { method: 'POST', headers: json, body: JSON.stringify({ items: [{ id: a.id, version: 1, checksum: a.checksum, admin: true }] }) }, 400, 'GGFS_BAD_REQUEST'],
    ['unknown top field', '/api/v1/held', { method: 'POST', headers: json, body: JSON.stringify({ items: [], drop: 1 }) }, 400, 'GGFS_BAD_REQUEST'],
    ['too many items', '/api/v1/held', { method: 'POST', headers: json, body: JSON.stringify({ items: Array.from({ length: 1001 }, () => ({ id: a.id, version: 1, checksum: a.checksum })) }) }, 400, 'GGFS_BAD_REQUEST'],
    ['huge body', '/api/v1/held', { method: 'POST', headers: json, body: JSON.stringify({ items: [], pad: 'x'.repeat(2 * 1024 * 1024) }) }, 413, 'GGFS_PAYLOAD_TOO_LARGE'],
    ['problem bad kind', '/api/v1/problems', { method: 'POST', headers: json, body: JSON.stringify({ items: [{ kind: 'drop-table', path: '/a' }] }) }, 400, 'GGFS_BAD_REQUEST'],
    ['problem bad path', '/api/v1/problems', { method: 'POST', headers: json, body: JSON.stringify({ items: [{ kind: 'other', path: '/ok' }, { kind: 'other', path: '/../x' }] }) }, 400, 'GGFS_BAD_PATH'],
    ['unknown endpoint', '/api/v1/nothing', { headers: auth }, 404, 'GGFS_ROUTE_NOT_FOUND'],
    ['wrong method', '/api/v1/feed', { method: 'DELETE', headers: auth }, 404, 'GGFS_ROUTE_NOT_FOUND'],
    ['bad URL encoding', '/api/v1/content?path=%E0%A4%A', { headers: auth }, 400, 'GGFS_BAD_PATH'],
  ];
  for (const [name, url, init, status, code] of cases) {
    const r = await fetch(g.base + url, init);
    const text = await r.text();
    t.equal(r.status, status, `${name}: ${status}`);
    let body: { error?: { code?: string; message?: string } } = {};
    try {
      body = JSON.parse(text);
    } catch {
      t.fail(`${name}: body is not JSON: ${text.slice(0, 100)}`);
    }
    t.equal(body.error?.code, code, `${name}: ${code}`);
    t.ok((body.error?.message ?? '').length > 5, `${name}: has a message`);
  }
  t.same(await before(), snap, 'nothing changed');

  // revoked -> 401 at once
  await revokeBackupNode(g.store, 'offsite1');
  const r = await g.get('/api/v1/feed');
  t.equal(r.status, 401);
  t.equal((await r.json()).error.code, 'GGFS_UNAUTHORIZED');
});

t.test('tokens are never stored or logged in clear', async (t) => {
  const g = await makeGrid(t);
  await g.putFile('/a.txt', 'hello');
  await g.get('/api/v1/feed?after=0');
  await g.get('/api/v1/content?path=/a.txt');
  await fetch(g.base + '/api/v1/feed', { headers: { authorization: `Bearer ${g.token}x` } });
  await fetch(g.base + `/?token=${encodeURIComponent(g.token)}`);
  await g.server.ctx.requestLog.flush();
  const secret = g.token.slice('ggfs_'.length + 16 + 1);
  t.ok(secret.length >= 40);
  const dump = await g.store.query<{ t: string }>(
    `SELECT string_agg(x::text, E'\n') AS t FROM (SELECT to_jsonb(b)::text AS x FROM backup_nodes b UNION ALL SELECT to_jsonb(r)::text FROM api_requests r UNION ALL SELECT to_jsonb(p)::text FROM problems p) s`,
  );
  t.ok(dump[0]!.t.includes('/api/v1/feed'), 'the request log has the requests');
  t.notOk(dump[0]!.t.includes(secret), 'the secret is not in the database');
  t.notOk(g.logText().includes(secret), 'the secret is not in the server log');
  t.ok(g.logText().includes('"route":"/api/v1/feed"'), 'the server log has the requests');
});

t.test('dashboard access: loopback without login, elsewhere the token', async (t) => {
  const g = await makeGrid(t, { config: { api: { dashboardToken: 'dashboard-secret-123456' } } });
  t.equal((await fetch(g.base + '/')).status, 200, 'loopback needs no login');
  // through a proxy (X-Forwarded-For) it is not loopback any more
  const proxied = await fetch(g.base + '/api/v1/stats', { headers: { 'x-forwarded-for': '203.0.113.9' } });
  t.equal(proxied.status, 401);
  const withToken = await fetch(g.base + '/api/v1/stats', { headers: { 'x-forwarded-for': '203.0.113.9', authorization: 'Bearer dashboard-secret-123456' } });
  t.equal(withToken.status, 200);
  const login = await fetch(g.base + '/login?token=dashboard-secret-123456', { redirect: 'manual' });
  t.equal(login.status, 303);
  const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
  t.equal((await fetch(g.base + '/api/v1/stats', { headers: { 'x-forwarded-for': '203.0.113.9', cookie } })).status, 200, 'the cookie works');
  t.equal((await fetch(g.base + '/login?token=wrong', { redirect: 'manual' })).status, 401);
});
