/**
 * Child processes for the bench: run a command to completion (timed from
 * outside, wall clock), start a long-running one, drop the page cache.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (dist/bench/lib/proc.js -> ../../..). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The compiled bench folder (dist/bench). */
export const BENCH_DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const GEOGRIDFS_BIN = path.join(REPO_ROOT, 'bin', 'geogridfs');

export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** wall-clock milliseconds from spawn to exit */
  wallMs: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** text fed to stdin */
  input?: string;
  /** discard stdout instead of collecting it (large outputs such as `ls -l`) */
  discardStdout?: boolean;
}

/** Environment for child processes: no tap/ts loader hooks from a test runner. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('TAP') || k.startsWith('_TAPJS')) delete env[k];
  return env;
}

const live = new Set<ChildProcess>();
/** one-shot commands in flight (not the daemons, which have their own clean-up steps) */
const running = new Set<ChildProcess>();

/**
 * Stop the one-shot commands still running (an interrupted bench must not
 * leave, say, a `geogridfs backup replicate` behind): SIGTERM, then SIGKILL.
 */
export async function killRunning(graceMs = 5000): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
          c.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
}

/** Processes started by this bench that have not exited yet. */
export function liveChildren(): ChildProcess[] {
  return [...live];
}

/** Run a command to completion; never throws for a non-zero exit (see `check`). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? childEnv(),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', opts.discardStdout ? 'ignore' : 'pipe', 'pipe'],
    });
    live.add(child);
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      if (stdout.length < 8 << 20) stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 1 << 20) stderr += d.toString();
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          stderr += `\n[bench: killed after ${opts.timeoutMs} ms]`;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : null;
    child.on('error', (err) => {
      live.delete(child);
      running.delete(child);
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      live.delete(child);
      running.delete(child);
      if (timer) clearTimeout(timer);
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      resolve({ code: code ?? -1, signal, stdout, stderr, wallMs });
    });
  });
}

/** Throw with the command's stderr when it failed. */
export function check(r: RunResult, what: string): RunResult {
  if (r.code !== 0) {
    const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-12).join('\n');
    throw new Error(`${what} failed (exit ${r.code}${r.signal ? `, ${r.signal}` : ''}):\n${tail}`);
  }
  return r;
}

/** Run and require success. */
export async function must(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return check(await run(cmd, args, opts), `${cmd} ${args.join(' ')}`);
}

/** A long-running child (a mount, a server): its output is kept in a ring for error messages. */
export interface Daemon {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startDaemon(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; logFile?: string } = {}): Daemon {
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 256 << 10) out = out.slice(-128 << 10);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      live.delete(child);
      if (opts.logFile) void writeFile(opts.logFile, out).catch(() => undefined);
      resolve({ code, signal });
    });
    child.on('error', (err) => {
      out += `\n[spawn error: ${err.message}]`;
      live.delete(child);
      resolve({ code: -1, signal: null });
    });
  });
  return { child, output: () => out, exited };
}

/** Stop a daemon: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopDaemon(d: Daemon, graceMs = 10_000): Promise<void> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  d.child.kill('SIGTERM');
  const timer = setTimeout(() => d.child.kill('SIGKILL'), graceMs);
  await d.exited;
  clearTimeout(timer);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let dropWarned = false;
/**
 * Empty the kernel's page, dentry and inode caches (needs root). Returns false
 * when that is not possible (the "cold" figures are then warm, and the report says so).
 */
export async function dropCaches(): Promise<boolean> {
  await run('sync', []);
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch (err) {
    if (!dropWarned) process.stderr.write(`bench: cannot drop caches (${(err as Error).message}); "cold" figures are warm\n`);
    dropWarned = true;
    return false;
  }
}
