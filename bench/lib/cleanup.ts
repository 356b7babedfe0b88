/**
 * Clean-up that runs however the bench ends: normally, on an error, or on
 * SIGINT/SIGTERM/SIGHUP. Steps run last-registered first; a failing step is
 * reported and the rest still run.
 */
import { readFile } from 'node:fs/promises';
import { killRunning, run } from './proc.js';

type Step = { name: string; fn: () => Promise<void> };

const steps: Step[] = [];
let running: Promise<void> | null = null;

/** Register a clean-up step; returns a function that runs it now (and unregisters it). */
export function onCleanup(name: string, fn: () => Promise<void>): () => Promise<void> {
  const step = { name, fn };
  steps.push(step);
  return async () => {
    const i = steps.indexOf(step);
    if (i < 0) return;
    steps.splice(i, 1);
    await fn();
  };
}

/** Run every registered step (once; concurrent callers share the run). */
export function cleanupAll(log: (s: string) => void = (s) => process.stderr.write(s + '\n')): Promise<void> {
  if (running) return running;
  running = (async () => {
    await killRunning().catch((err: Error) => log(`bench: stopping running commands failed: ${err.message}`));
    while (steps.length) {
      const step = steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        log(`bench: clean-up step "${step.name}" failed: ${(err as Error).message}`);
      }
    }
  })().finally(() => {
    running = null;
  });
  return running;
}

/** Install signal handlers that clean up and exit (130 for SIGINT, 143 for SIGTERM). */
export function cleanupOnSignals(): void {
  const handler = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${sig}: cleaning up...\n`);
    // a second signal while cleaning up is ignored: an interrupted clean-up leaves mounts behind
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.removeAllListeners(s);
      process.on(s, () => process.stderr.write('bench: still cleaning up, please wait\n'));
    }
    void cleanupAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : sig === 'SIGTERM' ? 143 : 129));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  process.once('SIGHUP', handler);
}

/** Mount points (from /proc/mounts) at or under `prefix`. */
export async function mountsUnder(prefix: string): Promise<string[]> {
  const text = await readFile('/proc/mounts', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const mp = line.split(' ')[1];
    if (!mp) continue;
    const decoded = mp.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (decoded === prefix || decoded.startsWith(prefix.replace(/\/$/, '') + '/')) out.push(decoded);
  }
  return out;
}

/** Lazily unmount a FUSE mount point if it is mounted (fusermount -uz). */
export async function unmount(mountPoint: string): Promise<void> {
  if (!(await mountsUnder(mountPoint)).includes(mountPoint)) return;
  let r = await run('fusermount', ['-uz', mountPoint]);
  if (r.code !== 0) r = await run('umount', ['-l', mountPoint]);
  if (r.code !== 0) throw new Error(`cannot unmount ${mountPoint}: ${r.stderr.trim()}`);
}

/** Pids of processes whose command line mentions `needle` (not this process). */
export async function processesMentioning(needle: string): Promise<{ pid: number; cmdline: string }[]> {
  const { readdir } = await import('node:fs/promises');
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(needle)) out.push({ pid, cmdline: cmdline.replace(/\0/g, ' ').trim() });
  }
  return out;
}
