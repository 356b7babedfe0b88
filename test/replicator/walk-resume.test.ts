import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeGrid } from './grid.js';
import { BIN, childEnv } from '../helpers/cli.js';

t.test('an interrupted walk resumes without hashing again what it recorded', async (t) => {
  const g = await makeGrid(t, { nodes: ['n1'], replicator: { concurrency: 1 } });
  const total = 3000;
  for (let d = 0; d < 30; d++) {
    const dir = path.join(g.roots.n1!, `d${d}`);
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < total / 30; i++) await writeFile(path.join(dir, `f${i}`), `file ${d}/${i}\n`.repeat(50));
  }
  const child = spawn(BIN, ['replicator', 'walk', '-c', g.configs.n1!], { env: childEnv(), cwd: g.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // stop it (SIGTERM, as systemd or Ctrl-C would) once some files are recorded
  let recorded = 0;
  const deadline = Date.now() + 60_000;
  while (recorded === 0 && Date.now() < deadline && child.exitCode === null) {
    recorded = (await g.store.query<{ n: number }>('SELECT count(*)::int AS n FROM files'))[0]!.n;
    if (!recorded) await new Promise((r) => setTimeout(r, 10));
  }
  child.kill('SIGTERM');
  const code = await exited;
  const first = (await g.store.query<{ n: number }>('SELECT count(*)::int AS n FROM files'))[0]!.n;
  t.ok(first > 0, `first run recorded ${first} files before it stopped (exit ${code}): ${out.trim()}`);

  const r = await g.run('n1', ['replicator', 'walk']);
  t.equal(r.code, 0, r.stderr);
  const hashed = Number(/hashed (\d+) files/.exec(r.stdout)?.[1]);
  const unchanged = Number(/(\d+) unchanged/.exec(r.stdout)?.[1]);
  t.equal(unchanged, first, 'everything the first run recorded is skipped');
  t.equal(hashed, total - first, 'only the rest is hashed');
  t.equal((await g.store.query<{ n: number }>('SELECT count(*)::int AS n FROM files'))[0]!.n, total, 'all registered once');
});
