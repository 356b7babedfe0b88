/**
 * A host-local lock file holding its owner's pid, for "one process at a time
 * on this host" jobs (starting the embedded PostgreSQL, a backup run).
 *
 * The lock file appears with its content already in it: the pid is written to
 * a private temp file that is then hard-linked to the lock's name (link(2)
 * fails with EEXIST when the name is taken, atomically). A lock created with
 * O_EXCL and written afterwards is empty for a moment, and a second process
 * that reads it then takes the empty file for a dead owner's and breaks a
 * live lock (seen in CI: two `geogridfs` processes both initialising the
 * embedded cluster).
 *
 * A lock whose pid is not alive (kill -9, crash) is taken over: it is renamed
 * to a name of our own first, so that two processes cannot both remove it,
 * and put back if what we moved turns out to be a live owner's new lock.
 */
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { pidAlive } from './host.js';

/** Lock files this process holds (a lock with our pid that is not here is a previous process's). */
const heldHere = new Set<string>();

export type PidLockAttempt = { release: () => Promise<void>; holder?: undefined } | { release?: undefined; holder: number };

async function readPid(file: string): Promise<number | null> {
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return null;
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

/**
 * One attempt to take the lock: `{ release }` when taken, `{ holder }` (the
 * live owner's pid) when another process holds it.
 */
export async function tryPidLock(file: string): Promise<PidLockAttempt> {
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = `${file}.new-${tag}`;
  await writeFile(tmp, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await link(tmp, file);
        heldHere.add(file);
        return {
          release: async () => {
            heldHere.delete(file);
            // release only our own lock (never one taken over from us)
            if ((await readPid(file)) === process.pid) await rm(file, { force: true });
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = await readPid(file);
      if (pid === null) continue; // released meanwhile
      if (pid === process.pid ? heldHere.has(file) : pid > 0 && pidAlive(pid)) return { holder: pid };
      // a dead owner's lock (or garbage): move it aside under our own name
      const aside = `${file}.stale-${tag}`;
      const moved = await rename(file, aside).then(
        () => true,
        () => false,
      );
      if (!moved) continue;
      const movedPid = await readPid(aside);
      if (movedPid && (movedPid === process.pid ? heldHere.has(file) : pidAlive(movedPid))) {
        // a live owner took it over between our read and our rename: give it back
        await link(aside, file).catch(() => undefined);
        await rm(aside, { force: true });
        return { holder: movedPid };
      }
      await rm(aside, { force: true });
    }
    const pid = await readPid(file);
    return { holder: pid ?? 0 };
  } finally {
    await rm(tmp, { force: true });
  }
}
