/**
 * Helpers for backup agent tests: an expected tree kept beside the grid (to
 * compare with `diff -r`), and agent runs in-process against the real API.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm, rename, writeFile, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { ApiClient } from '../../src/backup/api-client.js';
import { Replicator, type DeletionPolicy, type ReplicateSummary } from '../../src/backup/replicate.js';
import type { Grid } from '../api/grid-fixture.js';

export function diffTrees(a: string, b: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('diff', ['-r', '--no-dereference', '-x', '.geogridfs', a, b], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 2) : 0, out: stdout + stderr });
    });
  });
}

/** Keeps `expected` in step with the grid changes a test makes. */
export class Mirror {
  constructor(
    readonly g: Grid,
    readonly expected: string,
  ) {}
  async put(vpath: string, content: Buffer | string, opts: { nodes?: string[] } = {}) {
    const p = path.join(this.expected, vpath);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
    return this.g.putFile(vpath, content, opts);
  }
  async del(vpath: string) {
    await rm(path.join(this.expected, vpath));
    await this.prune(path.dirname(path.join(this.expected, vpath)));
    await this.g.deleteFile(vpath);
  }
  async mv(from: string, to: string) {
    const dest = path.join(this.expected, to);
    await mkdir(path.dirname(dest), { recursive: true });
    await rename(path.join(this.expected, from), dest);
    await this.prune(path.dirname(path.join(this.expected, from)));
    await this.g.renameFile(from, to);
  }
  private async prune(dir: string) {
    while (dir.startsWith(this.expected + '/')) {
      try {
        await rmdir(dir);
      } catch {
        return;
      }
      dir = path.dirname(dir);
    }
  }
}

export interface RunOpts {
  deletion?: DeletionPolicy;
  minFreeBytes?: number;
  urls?: string[];
  concurrency?: number;
  pageSize?: number;
  maxRetryAfterSec?: number;
  caFile?: string;
}

/** One `backup replicate` run in-process; returns its summary and the requests it sent. */
export async function runAgent(g: Grid, folder: string, o: RunOpts = {}): Promise<ReplicateSummary & { requests: number }> {
  const client = new ApiClient({ urls: o.urls ?? [g.base], token: g.token, backoffMs: 20, maxRetryAfterSec: o.maxRetryAfterSec ?? 5, caFile: o.caFile });
  try {
    const r = new Replicator({ client, folder, deletion: o.deletion ?? 'trash', concurrency: o.concurrency ?? 4, minFreeBytes: o.minFreeBytes ?? 0, ...(o.pageSize ? { pageSize: o.pageSize } : {}) });
    const s = await r.run();
    return { ...s, requests: client.requests };
  } finally {
    client.close();
  }
}
