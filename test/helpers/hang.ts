/**
 * Start/freeze/thaw/stop a hangfs process in front of a folder (see hangfs.ts).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childEnv } from './cli.js';

const SCRIPT = fileURLToPath(new URL('./hangfs.js', import.meta.url));

export interface HangFs {
  mountpoint: string;
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
}

function fusermountU(mnt: string): Promise<void> {
  return new Promise((resolve) => execFile('fusermount', ['-uz', mnt], () => resolve()));
}

export async function startHangFs(src: string, mnt: string): Promise<HangFs> {
  const child: ChildProcess = spawn(process.execPath, [SCRIPT, src, mnt], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('mounted')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`hangfs exited ${code}: ${err}`)));
  });
  let frozen = false;
  return {
    mountpoint: mnt,
    freeze() {
      child.kill('SIGSTOP');
      frozen = true;
    },
    thaw() {
      child.kill('SIGCONT');
      frozen = false;
    },
    async stop() {
      if (frozen) child.kill('SIGCONT');
      await fusermountU(mnt);
      child.kill('SIGKILL');
    },
  };
}
