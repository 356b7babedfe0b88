/**
 * backupTarget: each live file is held by `backupTarget` active backup nodes,
 * chosen by rendezvous hashing of its id. A backup node never gets a file it
 * is not chosen for; adding or revoking a backup node moves files to their
 * newly chosen holders (the agents see a new backup-set generation and read
 * the feed again); the dashboard figures count only each node's share.
 */
import t from 'tap';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, type Grid } from '../api/grid-fixture.js';
import { scratchDir } from '../helpers/db.js';
import { ApiClient } from '../../src/backup/api-client.js';
import { Replicator } from '../../src/backup/replicate.js';
import { addBackupNode, revokeBackupNode } from '../../src/meta/backup-nodes.js';
import { assignedInSql } from '../../src/meta/backups.js';
import { pick } from '../../src/replicator/rendezvous.js';

interface Host {
  name: string;
  token: string;
  folder: string;
}

async function host(g: Grid, name: string, token?: string): Promise<Host> {
  const tok = token ?? (await addBackupNode(g.store, name)).token;
  return { name, token: tok, folder: await scratchDir(`bk-${name}-`) };
}

async function run(g: Grid, h: Host) {
  const client = new ApiClient({ urls: [g.base], token: h.token, backoffMs: 20, maxRetryAfterSec: 5 });
  try {
    const s = await new Replicator({ client, folder: h.folder, deletion: 'trash', concurrency: 4, minFreeBytes: 0, pageSize: 7 }).run();
    return { ...s, requests: client.requests };
  } finally {
    client.close();
  }
}

/** Live files in a host's folder (not its state folder), as virtual paths. */
async function held(h: Host): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(h.folder, { recursive: true, withFileTypes: true })) {
    const full = path.join(e.parentPath, e.name);
    const rel = '/' + path.relative(h.folder, full);
    if (e.isFile() && !rel.startsWith('/.geogridfs')) out.push(rel);
  }
  return out.sort();
}

async function stats(g: Grid): Promise<Record<string, { wanted: number; held: number; behindFiles: number }>> {
  // the API serves these stale-while-refresh: ask until they reflect the last change
  const r = (await (await fetch(`${g.base}/api/v1/stats`)).json()) as { backupNodes: { name: string; wanted: number; held: number; behindFiles: number }[] };
  return Object.fromEntries(r.backupNodes.map((b) => [b.name, b]));
}

t.test('files are spread over the active backup nodes by rendezvous; adding and revoking a node moves them', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1'] });
  const files = new Map<string, number>();
  for (let i = 0; i < 24; i++) {
    const p = `/d${i % 3}/f${i}.txt`;
    files.set(p, (await g.putFile(p, `content ${i}\n`)).id);
  }
  const a = await host(g, 'offsite1', g.token);
  const b = await host(g, 'offsite2');
  const c = await host(g, 'offsite3');
  const expect = (names: string[], k = 1) => {
    const nodes = names.map((name) => ({ name }));
    const per: Record<string, string[]> = Object.fromEntries(names.map((n) => [n, []]));
    for (const [p, id] of files) for (const n of pick(id, nodes, k)) per[n.name]!.push(p);
    for (const n of names) per[n]!.sort();
    return per;
  };

  // SQL (dashboard) and JS (feed, content) choose the same nodes
  await g.store.query(`UPDATE files SET backup_target = 2 WHERE path LIKE '/d0/%'`);
  const sql = await assignedInSql(g.store, [...files.values()]);
  let compared = 0;
  for (const [p, id] of files) {
    const k = p.startsWith('/d0/') ? 2 : 1;
    t.same(sql.get(id), pick(id, [a, b, c], k).map((n) => n.name), `SQL and JS agree for ${p}`);
    compared++;
  }
  t.equal(compared, 24);
  await g.store.query(`UPDATE files SET backup_target = 1`);

  let want = expect(['offsite1', 'offsite2', 'offsite3']);
  t.ok(Object.values(want).every((l) => l.length > 0 && l.length < 24), 'every node gets a share, none gets all');
  for (const h of [a, b, c]) {
    const s = await run(g, h);
    t.equal(s.failed, 0);
    t.same(await held(h), want[h.name], `${h.name} holds exactly its share`);
  }
  // a node is never served a file it is not chosen for
  const notMine = want.offsite2![0]!;
  const res = await fetch(`${g.base}/api/v1/content?path=${encodeURIComponent(notMine)}`, { headers: { authorization: `Bearer ${a.token}` } });
  t.equal(res.status, 404, 'content of a file chosen for another node: 404');
  await res.arrayBuffer();
  let st = await stats(g);
  t.same([st.offsite1!.wanted, st.offsite2!.wanted, st.offsite3!.wanted], [want.offsite1!.length, want.offsite2!.length, want.offsite3!.length], 'stats: wanted = each node\'s share');
  t.same([st.offsite1!.behindFiles, st.offsite2!.behindFiles, st.offsite3!.behindFiles], [0, 0, 0], 'nobody behind');

  // nothing new: one small request
  const quiet = await run(g, a);
  t.equal(quiet.requests, 1, 'a run with nothing new is one request');
  t.equal(quiet.rescanned, false);

  // revoke offsite3: its files move to the others (and only those)
  await revokeBackupNode(g.store, 'offsite3');
  await new Promise((r) => setTimeout(r, 2100)); // the API reads the backup set at most every 2 s
  want = expect(['offsite1', 'offsite2']);
  for (const h of [a, b]) {
    const s = await run(g, h);
    t.equal(s.rescanned, true, `${h.name} saw the new backup set and read the feed again`);
    t.equal(s.failed, 0);
    t.same(await held(h), want[h.name], `${h.name} now also holds its part of offsite3's files`);
  }
  t.equal((await run(g, a)).requests, 1, 'then one request again');

  // add offsite4: it takes its share; the others move what they no longer hold to the trash
  const d = await host(g, 'offsite4');
  await new Promise((r) => setTimeout(r, 2100));
  want = expect(['offsite1', 'offsite2', 'offsite4']);
  for (const h of [d, a, b]) {
    const s = await run(g, h);
    t.equal(s.failed, 0);
    t.same(await held(h), want[h.name], `${h.name} holds exactly its share after offsite4 joined`);
  }
  t.ok(want.offsite4!.length > 0, 'offsite4 took some files');
  st = await stats(g);
  for (let tries = 0; tries < 100 && (st.offsite4?.held !== want.offsite4!.length || st.offsite1?.behindFiles !== 0 || st.offsite2?.behindFiles !== 0); tries++) {
    await new Promise((r) => setTimeout(r, 100));
    st = await stats(g);
  }
  t.ok(st.offsite4, 'offsite4 is in the stats');
  t.equal(st.offsite4!.wanted, want.offsite4!.length);
  t.equal(st.offsite4!.held, want.offsite4!.length);
  t.same([st.offsite1!.behindFiles, st.offsite2!.behindFiles, st.offsite4!.behindFiles], [0, 0, 0], 'stats count only each node\'s share');
  t.equal(st.offsite3!.wanted, 0, 'a revoked node is not wanted to hold anything');
});
