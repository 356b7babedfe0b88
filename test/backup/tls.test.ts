/**
 * The API over TLS (api.tls) and the agent trusting a self-signed
 * certificate through backup.caFile.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeGrid } from '../api/grid-fixture.js';
import { scratchDir } from '../helpers/db.js';
import { Mirror, diffTrees, runAgent } from './agent-fixture.js';

t.test('HTTPS end to end with a self-signed certificate', async (t) => {
  const certs = await scratchDir('tls-');
  const cert = path.join(certs, 'api.crt');
  const key = path.join(certs, 'api.key');
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
  const g = await makeGrid(t, { config: { api: { tls: { cert, key } } } });
  t.match(g.base, /^https:\/\/127\.0\.0\.1:\d+$/);
  await t.rejects(fetch(g.base + '/healthz'), 'an untrusted certificate is refused by a normal client');
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  await m.put('/secure/a.bin', Buffer.alloc(100_000, 3));
  const backup = path.join(root, 'backup');
  const s = await runAgent(g, backup, { caFile: cert });
  t.equal(s.downloaded, 1);
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, d.out);
});
