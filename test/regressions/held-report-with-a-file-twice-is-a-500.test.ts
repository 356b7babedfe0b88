/**
 * Found by the soak (full form): a backup agent's POST /api/v1/held naming
 * the same file twice in one batch made the API answer 500 (GGFS_INTERNAL:
 * "ON CONFLICT DO UPDATE command cannot affect row a second time"), and the
 * agent's run failed, for ever, at that batch. Fixed in meta/backups.ts.
 */
import t from 'tap';
import { makeGrid } from '../api/grid-fixture.js';

t.test('a held report naming a file twice', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1'] });
  const f = await g.putFile('/a.txt', 'alpha', { nodes: ['n1'] });
  const item = { id: f.id, version: f.version, checksum: f.checksum };
  const res = await fetch(`${g.base}/api/v1/held`, {
    method: 'POST',
    headers: { authorization: `Bearer ${g.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ items: [item, item] }),
  });
  t.ok(res.status < 500, `not a 5xx (${res.status})`);
  t.equal(res.status, 200, 'accepted');
  const rows = await g.store.query('SELECT 1 FROM backups WHERE file_id = $1', [f.id]);
  t.equal(rows.length, 1, 'one backup recorded');
});
