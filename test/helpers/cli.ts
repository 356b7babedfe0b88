/**
 * Run the CLI in-process (runCli) or as a real process (bin/geogridfs),
 * capturing output.
 */
import { PassThrough } from 'node:stream';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/main.js';

export const BIN = fileURLToPath(new URL('../../../bin/geogridfs', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await runCli(args, { stdout, stderr, env: { ...process.env, ...opts.env }, cwd: opts.cwd ?? process.cwd() });
  return { code, stdout: out, stderr: err };
}

/**
 * Environment for a child geogridfs process: the test's own environment
 * without tap's NODE_OPTIONS loader hooks (the child is a plain user process).
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('TAP') || k.startsWith('_TAPJS')) delete env[k];
  return env;
}

/** Run bin/geogridfs as a child process. */
export function cliProcess(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: childEnv(opts.env), cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (process.env.GEOGRIDFS_TEST_LOGS) {
        const name = args.filter((a) => /^[a-z][a-z-]*$/.test(a)).slice(0, 2).join('-') || 'cli';
        void fs.mkdir(process.env.GEOGRIDFS_TEST_LOGS, { recursive: true })
          .then(() => fs.appendFile(path.join(process.env.GEOGRIDFS_TEST_LOGS!, `cli-${name}.log`), `--- ${new Date().toISOString()} pid ${child.pid} ${args.join(' ')} exit ${code}\n${stdout}${stderr}`))
          .catch(() => undefined);
      }
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}
