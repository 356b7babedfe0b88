import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFile, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scratchDir } from '../helpers/db.js';
import { tryPidLock } from '../../src/util/pidlock.js';

const pidlockModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/util/pidlock.js');

/** A child that takes the lock `rounds` times, each time holding it while it appends enter/leave lines to a log. */
const contender = `
import { tryPidLock } from ${JSON.stringify(pidlockModule)};
import { appendFile } from 'node:fs/promises';
const [lock, log, rounds] = process.argv.slice(1);
for (let i = 0; i < Number(rounds); i++) {
  let got;
  while (!(got = await tryPidLock(lock)).release) await new Promise((r) => setTimeout(r, 1));
  await appendFile(log, 'enter ' + process.pid + '\\n');
  await new Promise((r) => setTimeout(r, 2));
  await appendFile(log, 'leave ' + process.pid + '\\n');
  await got.release();
}
`;

function runNode(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    p.on('error', reject);
    p.on('exit', (code) => resolve(code ?? -1));
  });
}

t.test('pid lock: concurrent processes never hold it at once', async (t) => {
  const dir = await scratchDir('pidlock-');
  const lock = path.join(dir, 'lock');
  const log = path.join(dir, 'log');
  await writeFile(log, '');
  const codes = await Promise.all(Array.from({ length: 6 }, () => runNode(['--input-type=module', '-e', contender, lock, log, '25'])));
  t.same(codes, [0, 0, 0, 0, 0, 0], 'every contender finished');
  const lines = (await readFile(log, 'utf8')).trim().split('\n');
  t.equal(lines.length, 6 * 25 * 2, 'every round logged');
  let inside: string | null = null;
  let overlaps = 0;
  for (const line of lines) {
    const [what, pid] = line.split(' ');
    if (what === 'enter') {
      if (inside !== null) overlaps++;
      inside = pid;
    } else {
      if (inside !== pid) overlaps++;
      inside = null;
    }
  }
  t.equal(overlaps, 0, 'enter/leave strictly alternate, by the same process');
  t.same((await readdir(dir)).sort(), ['log'], 'no lock or temp file left behind');
});

t.test('pid lock: a live holder is reported, a dead one or an empty file is taken over', async (t) => {
  const dir = await scratchDir('pidlock-');
  const lock = path.join(dir, 'lock');

  const first = await tryPidLock(lock);
  t.ok(first.release, 'taken');
  const second = await tryPidLock(lock);
  t.equal(second.holder, process.pid, 'held by this process: the second attempt waits');
  await first.release!();

  // a lock naming a live process that is not us
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
  t.teardown(() => sleeper.kill('SIGKILL'));
  await writeFile(lock, `${sleeper.pid}\n`);
  t.equal((await tryPidLock(lock)).holder, sleeper.pid, 'a live owner is reported');
  t.equal((await readFile(lock, 'utf8')).trim(), String(sleeper.pid), 'and its lock is left alone');

  // the owner dies (kill -9): its lock is taken over
  sleeper.kill('SIGKILL');
  await new Promise((r) => sleeper.once('exit', r));
  const takeover = await tryPidLock(lock);
  t.ok(takeover.release, "a dead owner's lock is taken over");
  t.equal((await readFile(lock, 'utf8')).trim(), String(process.pid));
  await takeover.release!();

  // an empty or garbage lock file (a crash of an older version mid-write)
  await writeFile(lock, '');
  const fromEmpty = await tryPidLock(lock);
  t.ok(fromEmpty.release, 'an empty lock file is taken over');
  await fromEmpty.release!();
  t.same(await readdir(dir), [], 'released: nothing left');
});
