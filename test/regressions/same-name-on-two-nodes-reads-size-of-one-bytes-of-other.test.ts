/**
 * Found by the hostile-names fault test: a name placed by hand on two nodes
 * with different bytes (not yet in metadata) was stat'ed from the first node
 * but read from another (the read policy spread reads over "replicas" that
 * were not replicas): the reader got the size of one file and the bytes of
 * the other — a torn file. Fixed in grid-fs.ts: a node-only entry is read
 * from the node its attributes came from.
 */
import t from 'tap';
import fs from 'node:fs/promises';
import path from 'node:path';
import { faultGrid } from '../faults/lib.js';

t.test('a name on two nodes with different bytes reads whole from one of them', async (t) => {
  const g = await faultGrid(t, { nodes: 2 });
  const m = await g.mount();
  for (let i = 0; i < 12; i++) {
    await fs.writeFile(path.join(g.nodes.n1!, `clash${i}`), `n1 ${i}`);
    await fs.writeFile(path.join(g.nodes.n2!, `clash${i}`), `the copy on n2 is longer ${i}`);
  }
  for (let i = 0; i < 12; i++) {
    const p = path.join(m.mountpoint, `clash${i}`);
    const st = await fs.stat(p);
    const got = await fs.readFile(p, 'utf8');
    t.ok([`n1 ${i}`, `the copy on n2 is longer ${i}`].includes(got), `clash${i} reads whole (${JSON.stringify(got)})`);
    t.equal(st.size, Buffer.byteLength(got), `clash${i}: its size is the size of what is read`);
  }
});
