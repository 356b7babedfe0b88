/**
 * Bad input and security of the central API (real server on loopback, real
 * PostgreSQL): property-based fuzzing with fast-check of every route with
 * malformed and hostile requests — never a 5xx, never a change to files,
 * replicas or backups, never a byte from outside the tree; every backup
 * endpoint refuses a missing, wrong or revoked token; the token and the
 * database password never appear in the logs or in error bodies.
 */
import t from 'tap';
import fc from 'fast-check';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid } from '../api/grid-fixture.js';
import { revokeBackupNode } from '../../src/meta/backup-nodes.js';
import type { MetaStore } from '../../src/meta/store.js';
import { FULL, figures } from './lib.js';

const SECRET = 'TOP-SECRET-OUTSIDE-THE-TREE';

async function snapshot(store: MetaStore): Promise<string> {
  const rows = await store.query<{ s: string }>(
    `SELECT (SELECT coalesce(string_agg(id || ':' || path || ':' || version || ':' || coalesce(deleted_at::text, ''), ',' ORDER BY id), '') FROM files) || '|' ||
            (SELECT coalesce(string_agg(file_id || ':' || node_id || ':' || version, ',' ORDER BY file_id, node_id), '') FROM replicas) || '|' ||
            (SELECT count(*) FROM backups) AS s`,
  );
  return rows[0]!.s;
}

const hostilePath = fc.oneof(
  fc.constantFrom('/', '/a.txt', '/docs', '/docs/b.txt', '../secret.txt', '/../secret.txt', '/docs/../../secret.txt', '%2e%2e/secret.txt', '/docs/%2e%2e/%2e%2e/secret.txt',
    '/a.txt\0.png', '//etc/passwd', '/etc/passwd', 'C:\\windows', '/docs/link-out', '/docs/link-out/x', '', ' ', '/a.txt/', '/./a.txt', '/docs//b.txt', '\u202e/a', '/' + 'x'.repeat(5000)),
  fc.string({ maxLength: 60 }),
  fc.array(fc.constantFrom('..', '.', 'docs', 'a.txt', '', '%00', 'secret.txt', '\\..'), { maxLength: 8 }).map((p) => p.join('/')),
);
const hostileNumber = fc.oneof(fc.constantFrom('-1', '0', '1e309', 'NaN', '9'.repeat(40), '0x10', '1.5', '', 'null', '[]', '18446744073709551616', '-0'), fc.integer().map(String), fc.string({ maxLength: 10 }));
const hostileRange = fc.oneof(fc.constantFrom('bytes=0-', 'bytes=-1', 'bytes=5-2', 'bytes=999999999-', 'bytes=0-0,1-1', 'bytes=abc', 'items=0-1', 'bytes=-', 'bytes=' + '9'.repeat(30) + '-'), fc.string({ maxLength: 20 }));
const hostileJson = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.constantFrom('{', '{"items":', '{"items":[{"id":"1; DROP TABLE files","version":1,"checksum":"x"}]}', '{"items":[{"id":1e308,"version":-1,"checksum":"' + 'a'.repeat(64) + '"}]}',
    '{"items":[{"kind":"other","path":"../../etc/passwd","detail":"x"}],"extra":1}', '{"__proto__":{"admin":true},"items":[]}', 'null', '[]', '"x"', '{"items":' + '['.repeat(2000) + ']'.repeat(2000) + '}'),
  fc.string({ maxLength: 200 }),
);

t.test('the API under malformed and hostile requests', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1', 'n2'] });
  await g.putFile('/a.txt', 'alpha');
  await g.putFile('/docs/b.txt', 'bee');
  // a secret beside the node folders, and a symlink pointing out of the tree
  await writeFile(path.join(g.dir, 'secret.txt'), SECRET);
  await writeFile(path.join(g.dir, 'nodes', 'secret.txt'), SECRET);
  const { symlink } = await import('node:fs/promises');
  await symlink(path.join(g.dir, 'secret.txt'), path.join(g.nodes.n1!, 'docs', 'link-out')).catch(() => undefined);
  const before = await snapshot(g.store);

  const routes = ['/api/v1/feed', '/api/v1/list', '/api/v1/content', '/api/v1/held', '/api/v1/problems', '/api/v1/stats', '/metrics', '/healthz', '/readyz', '/', '/api/v1/', '/api/v2/feed', '/api/v1/content/../../secret.txt'];
  let requests = 0;
  const statuses: Record<string, number> = {};
  const bad: string[] = [];
  const req = fc.record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
    route: fc.constantFrom(...routes),
    query: fc.dictionary(fc.constantFrom('path', 'after', 'limit', 'cursor', 'x', 'path[]', '__proto__'), fc.oneof(hostilePath, hostileNumber), { maxKeys: 3 }),
    range: fc.option(hostileRange),
    ifRange: fc.option(fc.string({ maxLength: 70 })),
    contentType: fc.constantFrom('application/json', 'text/plain', 'application/octet-stream', 'application/json; charset=utf-16', ''),
    body: fc.option(hostileJson),
    auth: fc.constantFrom('good', 'none', 'wrong', 'malformed'),
  });
  await fc.assert(
    fc.asyncProperty(req, async (r) => {
      const qs = Object.entries(r.query)
        .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
        .join('&');
      const headers: Record<string, string> = {};
      if (r.auth === 'good') headers.authorization = `Bearer ${g.token}`;
      if (r.auth === 'wrong') headers.authorization = `Bearer ${g.token.slice(0, -4)}AAAA`;
      if (r.auth === 'malformed') headers.authorization = 'Bearer \u00ff' + 'x'.repeat(300);
      if (r.range) headers.range = r.range;
      if (r.ifRange) headers['if-range'] = r.ifRange.replace(/[^\x20-\x7e]/g, '');
      if (r.contentType) headers['content-type'] = r.contentType;
      const hasBody = r.body !== null && !['GET', 'HEAD'].includes(r.method);
      let res: Response;
      try {
        res = await fetch(`${g.base}${r.route}${qs ? '?' + qs : ''}`, { method: r.method, headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v.replace(/[^\x20-\x7e]/g, '?')])), ...(hasBody ? { body: r.body! } : {}) });
      } catch (err) {
        bad.push(`${r.method} ${r.route}?${qs}: connection failed: ${(err as Error).message}`);
        return false;
      }
      requests++;
      const body = r.method === 'HEAD' ? '' : await res.text();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (res.status >= 500) bad.push(`${r.method} ${r.route}?${qs} -> ${res.status} ${body.slice(0, 200)}`);
      if (body.includes(SECRET)) bad.push(`${r.method} ${r.route}?${qs}: served bytes from outside the tree`);
      if (body.includes(g.token)) bad.push(`${r.method} ${r.route}?${qs}: the token is in the response`);
      return res.status < 500 && !body.includes(SECRET);
    }),
    { numRuns: FULL ? 3000 : 400, seed: 7, endOnFailure: false },
  ).catch((err: unknown) => t.fail(`fast-check found a counterexample: ${(err as Error).message.slice(0, 1500)}`));
  t.same(bad, [], 'no 5xx, no bytes from outside the tree, no token in a response');
  t.equal(await snapshot(g.store), before, 'files, replicas and backups unchanged');
  const log = g.logText();
  t.notOk(log.includes(g.token.slice(22)), 'the token secret never appears in the logs');
  const pw = new URL(g.dbUrl).password;
  t.ok(!pw || !log.includes(pw), 'the database password never appears in the logs');
  figures(t, 'api fuzz', { requests, statuses });
});

t.test('every backup endpoint refuses a missing, wrong or revoked token', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1'] });
  await g.putFile('/a.txt', 'alpha', { nodes: ['n1'] });
  const endpoints: [string, string, string?][] = [
    ['GET', '/api/v1/feed?after=0'],
    ['GET', '/api/v1/list?path=/'],
    ['GET', '/api/v1/content?path=/a.txt'],
    ['POST', '/api/v1/held', '{"items":[]}'],
    ['POST', '/api/v1/problems', '{"items":[]}'],
  ];
  const call = (m: string, p: string, body: string | undefined, auth: string | null) =>
    fetch(g.base + p, { method: m, headers: { ...(auth ? { authorization: auth } : {}), 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' }, ...(body ? { body } : {}) });
  for (const [m, p, body] of endpoints) {
    t.equal((await call(m, p, body, `Bearer ${g.token}`)).status < 300, true, `${m} ${p} works with the token`);
    t.equal((await call(m, p, body, null)).status, 401, `${m} ${p} without a token: 401`);
    t.equal((await call(m, p, body, `Bearer ${g.token.slice(0, -1)}${g.token.endsWith('A') ? 'B' : 'A'}`)).status, 401, `${m} ${p} with a wrong token: 401`);
    t.equal((await call(m, p, body, 'Basic Zm9vOmJhcg==')).status, 401, `${m} ${p} with another scheme: 401`);
  }
  await revokeBackupNode(g.store, g.backupNode.name);
  for (const [m, p, body] of endpoints) t.equal((await call(m, p, body, `Bearer ${g.token}`)).status, 401, `${m} ${p} with a revoked token: 401`);
  const res = await call('GET', '/api/v1/feed?after=0', undefined, `Bearer ${g.token}`);
  const text = await res.text();
  t.notOk(text.includes(g.token), 'the refusal does not echo the token');
  t.notOk(g.logText().includes(g.token.slice(22)), 'the token secret is not in the logs');
});
