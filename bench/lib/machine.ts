/**
 * The machine a run happened on: CPUs, memory, kernel, the disk under the
 * scratch folder, tool versions.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { run } from './proc.js';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  disk: string;
  node: string;
  mergerfs: string;
  postgres: string;
  fuseNative: string;
  /** 1-minute load average when the run started (other work on the machine skews every figure) */
  loadAverage: number;
  /** the same when it ended */
  loadAverageEnd?: number;
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args).catch(() => null);
  if (!r || r.code !== 0) return 'unknown';
  return (r.stdout || r.stderr).trim().split('\n')[0] ?? 'unknown';
}

/** "vda (virtio, 256 GiB, ssd), ext4" for the file system holding `dir`. */
async function diskOf(dir: string): Promise<string> {
  const df = await run('df', ['--output=source,fstype,size', '-BG', dir]).catch(() => null);
  const cols = df?.stdout.trim().split('\n')[1]?.trim().split(/\s+/) ?? [];
  const [source = '?', fstype = '?', size = '?'] = cols;
  const dev = source.replace(/^\/dev\//, '').replace(/p?\d+$/, '');
  const rotational = await readFile(`/sys/block/${dev}/queue/rotational`, 'utf8').then((s) => (s.trim() === '1' ? 'rotational' : 'non-rotational'), () => '');
  const model = await readFile(`/sys/block/${dev}/device/model`, 'utf8').then((s) => s.trim(), () => '');
  const kind = dev.startsWith('vd') ? 'virtio' : dev.startsWith('nvme') ? 'NVMe' : '';
  return `${source} (${[kind, model, rotational, size].filter(Boolean).join(', ')}), ${fstype}`;
}

export async function machineInfo(scratch: string, postgresVersion: string): Promise<MachineInfo> {
  const cpus = os.cpus();
  const mergerfs = (await firstLine('mergerfs', ['--version'])).replace(/^mergerfs\s*(version:?)?\s*/i, '');
  let fuseNative = 'unknown';
  try {
    const { createRequire } = await import('node:module');
    const require = createRequire(import.meta.url);
    fuseNative = (require('fuse-native/package.json') as { version: string }).version;
  } catch {
    /* not installed */
  }
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: os.release(),
    disk: await diskOf(scratch),
    node: process.version,
    mergerfs,
    postgres: postgresVersion,
    fuseNative,
    loadAverage: +os.loadavg()[0]!.toFixed(2),
  };
}
