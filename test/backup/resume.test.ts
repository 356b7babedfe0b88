/**
 * Crashes and failures during a download: kill -9 of the agent mid-file
 * (no partial file in place, the rerun resumes with Range), a replica that
 * shrinks or a node that hangs mid-stream (the server continues from the
 * next replica), overlapping runs (lock), the CLI as cron runs it, and
 * `backup walk` for a host that already holds copies.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdir, stat, truncate, writeFile, mkdir, cp } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid, sha256 } from '../api/grid-fixture.js';
import { scratchDir, writeConfig } from '../helpers/db.js';
import { BIN, childEnv, cliProcess } from '../helpers/cli.js';
import { startHangFs, type HangFs } from '../helpers/hang.js';
import { Mirror, diffTrees, runAgent } from './agent-fixture.js';
import { setThrottle } from '../../src/meta/backup-nodes.js';
import { takeLock } from '../../src/backup/local-state.js';

const blob = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * seed + (i >> 9)) % 256));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function partialSize(backup: string): Promise<number> {
  const dir = path.join(backup, '.geogridfs', 'partial');
  const names = await readdir(dir).catch(() => [] as string[]);
  let n = 0;
  for (const name of names) n += (await stat(path.join(dir, name)).catch(() => ({ size: 0 }))).size;
  return n;
}

async function waitFor(what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

t.test('kill -9 mid-download: nothing partial in place, the rerun resumes with Range', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  const size = 3_000_000;
  await m.put('/big/file.bin', blob(size, 11));
  await setThrottle(g.store, 'offsite1', { bytesPerSec: 600_000 });
  const config = await writeConfig(root, { dataDir: path.join(root, 'data'), backup: { apiUrls: [g.base], token: g.token, folder: backup, minFreeBytes: 0 } });
  const child = spawn(BIN, ['backup', 'replicate', '-c', config], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code, sig) => r(code ?? (sig ? -1 : null))));
  await waitFor('some bytes in the partial file', async () => (await partialSize(backup)) > 600_000);
  child.kill('SIGKILL');
  await exited;
  const had = await partialSize(backup);
  t.ok(had > 0 && had < size, `killed with ${had} of ${size} bytes (${err.slice(0, 200)})`);
  await t.rejects(stat(path.join(backup, 'big/file.bin')), { code: 'ENOENT' }, 'no partial file in place');

  await setThrottle(g.store, 'offsite1', { bytesPerSec: null });
  const s = await runAgent(g, backup);
  t.equal(s.failed, 0);
  t.equal(s.resumed, 1, 'resumed');
  t.ok(s.bytes < size, `transferred ${s.bytes} < ${size} bytes`);
  t.equal(s.bytes, size - had, 'exactly the missing bytes');
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
  await g.server.ctx.requestLog.flush();
  const ranged = await g.store.query<{ status: number; bytes: number }>(`SELECT status, bytes FROM api_requests WHERE route = '/api/v1/content' ORDER BY id`);
  t.same(ranged.map((r) => r.status), [200, 206], 'the first download was cut, the second asked for a Range');
  t.equal(ranged[1]!.bytes, size - had);
});

t.test('a replica that shrinks mid-stream: the server continues from the other replica', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  const size = 3_000_000;
  const f = await m.put('/f.bin', blob(size, 5));
  await setThrottle(g.store, 'offsite1', { bytesPerSec: 1_500_000 });
  const run = runAgent(g, backup);
  await waitFor('the download to start', async () => (await partialSize(backup)) > 400_000);
  await truncate(path.join(g.nodes.n1!, 'f.bin'), 1000); // n1 serves first (active, by name)
  const s = await run;
  t.equal(s.failed, 0);
  t.equal(s.resumed, 0, 'the client saw one uninterrupted download');
  t.equal(s.bytes, size);
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
  // the server records the problem beside the stream, not before it: give it a moment
  let probs: { kind: string; node: string }[] = [];
  await waitFor('the problem row', async () => {
    probs = await g.store.query<{ kind: string; node: string }>(`SELECT p.kind, n.name AS node FROM problems p JOIN nodes n ON n.id = p.node_id`);
    return probs.length > 0;
  });
  t.same(probs, [{ kind: 'missing-replica', node: 'n1' }], 'the bad replica is recorded');
  t.equal(f.checksum, sha256(blob(size, 5)));
});

t.test('a node that hangs mid-stream (frozen FUSE folder): time-out, then the other replica', async (t) => {
  let hang: HangFs | null = null;
  const g = await makeGrid(t, {
    serveNodes: async (nodes, dir) => {
      const mnt = path.join(dir, 'n1-mnt');
      await mkdir(mnt, { recursive: true });
      hang = await startHangFs(nodes.n1!, mnt);
      return { ...nodes, n1: mnt };
    },
    config: { storage: { timeoutMs: 1000 } },
  });
  t.teardown(() => hang?.stop());
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  const size = 3_000_000;
  await m.put('/h.bin', blob(size, 17));
  await setThrottle(g.store, 'offsite1', { bytesPerSec: 1_500_000 });
  const run = runAgent(g, backup);
  await waitFor('the download to start', async () => (await partialSize(backup)) > 400_000);
  hang!.freeze();
  const s = await run;
  hang!.thaw();
  t.equal(s.failed, 0);
  t.equal(s.bytes, size, 'one uninterrupted download');
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
});

t.test('overlapping runs: the second exits at once', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const backup = path.join(root, 'backup');
  await g.putFile('/a.txt', 'a');
  const release = await takeLock(backup); // held by this (live) process
  const config = await writeConfig(root, { dataDir: path.join(root, 'data'), backup: { apiUrls: [g.base], token: g.token, folder: backup, minFreeBytes: 0 } });
  const r = await cliProcess(['backup', 'replicate', '-q', '-c', config]);
  t.equal(r.code, 0, 'exits 0: the other run does the work');
  t.match(r.stderr, /another backup run \(pid \d+\) is in progress/);
  t.notMatch(r.stdout, /downloaded/, 'and did nothing');
  await release();
  const ok = await cliProcess(['backup', 'replicate', '-q', '-c', config]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /^backup: 1 downloaded .* cursor 0 -> \d+ in [\d.]+ s\n$/, 'one summary line under cron');
  const quiet = await cliProcess(['backup', 'replicate', '-q', '-c', config]);
  t.match(quiet.stdout, /^backup: 0 downloaded/);
});

t.test('backup walk: existing copies are registered, not downloaded again; mismatches reported', async (t) => {
  const g = await makeGrid(t);
  const root = await scratchDir('bk-');
  const m = new Mirror(g, path.join(root, 'expected'));
  const backup = path.join(root, 'backup');
  for (let i = 0; i < 20; i++) await m.put(`/w/${i % 3}/f${i}.bin`, blob(10_000 + i, i + 1));
  await m.put('/w/changed.txt', 'grid content');
  await cp(m.expected, backup, { recursive: true });
  await writeFile(path.join(backup, 'w/changed.txt'), 'old local content');
  await writeFile(path.join(backup, 'w/local-only.txt'), 'only here');
  const config = await writeConfig(root, { dataDir: path.join(root, 'data'), backup: { apiUrls: [g.base], token: g.token, folder: backup, minFreeBytes: 0 } });
  const w = await cliProcess(['backup', 'walk', '-p', backup, '-q', '-c', config]);
  t.equal(w.code, 0, w.stderr);
  t.match(w.stdout, /22 files .* 20 match the grid, 0 already known, 1 differ, 1 unknown to the grid; 20 reported held/);
  const probs = await g.store.query<{ kind: string; path: string }>('SELECT kind, path FROM problems ORDER BY path');
  t.same(probs, [{ kind: 'backup-mismatch', path: '/w/changed.txt' }, { kind: 'backup-unknown-file', path: '/w/local-only.txt' }]);
  const again = await cliProcess(['backup', 'walk', '-q', '-c', config]);
  t.match(again.stdout, /20 already known/, 'resumable: known files are not hashed again');
  const s = await runAgent(g, backup);
  t.equal(s.downloaded, 1, 'only the differing file is downloaded');
  t.equal(s.keptAside, 1, 'after keeping the local one aside');
  await writeFile(path.join(m.expected, 'w/local-only.txt'), 'only here');
  const d = await diffTrees(m.expected, backup);
  t.equal(d.code, 0, `diff -r is clean ${d.out}`);
});
