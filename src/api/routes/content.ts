/**
 * GET /api/v1/content?path=/a/b — a file's bytes, streamed from a node
 * holding the current version (failing over to the next mid-stream), with
 * ETag (= "sha256"), Range (one range), If-Range and If-Match, paced and
 * admitted by the backup node's throttle (429 + Retry-After when over).
 */
import { Transform } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from '../server.js';
import { fileForContent } from '../../meta/feed.js';
import { recordProblem } from '../../meta/problems.js';
import { ApiError } from '../errors.js';
import { ReplicaStream, sourcesFor } from '../replica-reader.js';
import { parsePath } from './common.js';
import { isAssigned } from '../assignment.js';

/** Parse a Range header against a size: [start, end] inclusive, or throws. */
export function parseRange(header: string, size: number): [number, number] {
  const m = /^bytes=(\d{0,16})-(\d{0,16})$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw new ApiError('GGFS_BAD_RANGE', 'Range must be one "bytes=START-END", "bytes=START-" or "bytes=-SUFFIX"');
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw new ApiError('GGFS_RANGE_NOT_SATISFIABLE', 'an empty suffix range', { 'content-range': `bytes */${size}` });
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) throw new ApiError('GGFS_BAD_RANGE', 'the range ends before it starts');
  }
  if (!Number.isSafeInteger(start) || start >= size) throw new ApiError('GGFS_RANGE_NOT_SATISFIABLE', `the file has ${size} bytes`, { 'content-range': `bytes */${size}` });
  return [start, end];
}

export async function registerContentRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  app.get(
    '/api/v1/content',
    {
      config: { auth: 'backup' },
      schema: {
        querystring: { type: 'object', additionalProperties: false, required: ['path'], properties: { path: { type: 'string', maxLength: 4096 } } },
      },
    },
    async (req: FastifyRequest<{ Querystring: { path: string } }>, reply: FastifyReply) => {
      const vpath = parsePath(req.query.path);
      const file = await fileForContent(ctx.store, vpath);
      if (!file) throw new ApiError('GGFS_NOT_FOUND', `no file ${vpath}`);
      if (file.kind !== 'file' || file.checksum === null) throw new ApiError('GGFS_NOT_FOUND', `${vpath} is a symlink: it has no content (see symlinkTarget in the feed)`);
      // a backup node gets only the files it is chosen to hold
      if (!isAssigned(await ctx.membership.get(), file.id, file.backupTarget, req.backupNode!.name)) {
        throw new ApiError('GGFS_NOT_FOUND', `${vpath} is not backed up on this backup node (its backup target picks other backup nodes)`);
      }
      const etag = `"${file.checksum}"`;

      const ifMatch = req.headers['if-match'];
      if (typeof ifMatch === 'string' && ifMatch.trim() !== '*' && !ifMatch.split(',').some((t) => t.trim() === etag)) {
        throw new ApiError('GGFS_PRECONDITION_FAILED', `${vpath} changed: its ETag is now ${etag}`, { etag });
      }
      let range: [number, number] | null = null;
      const rangeHeader = req.headers.range;
      if (typeof rangeHeader === 'string') {
        const ifRange = req.headers['if-range'];
        const rangeApplies = typeof ifRange !== 'string' || ifRange.trim() === etag;
        if (file.size === 0) {
          if (rangeApplies) throw new ApiError('GGFS_RANGE_NOT_SATISFIABLE', 'the file is empty', { 'content-range': 'bytes */0' });
        } else {
          const parsed = parseRange(rangeHeader, file.size); // a malformed header is a 400 even when If-Range disables it
          if (rangeApplies) range = parsed;
        }
      }

      const node = req.backupNode!;
      const release = ctx.throttle.admit(node.id, node);
      let stream: ReplicaStream;
      try {
        const replicas = file.replicas;
        const sources = sourcesFor(ctx.config.nodes, file.version, replicas);
        const nodeIds = new Map(replicas.map((r) => [r.nodeName, r.nodeId]));
        const start = range ? range[0] : 0;
        const end = range ? range[1] : file.size - 1;
        stream = new ReplicaStream({
          sources,
          size: file.size,
          start,
          end,
          timeoutMs: ctx.config.storage.timeoutMs,
          onFailover: (nodeName, err) => {
            ctx.log.warn({ node: nodeName, path: vpath, err: err.message }, 'replica unreadable; failing over');
            recordProblem(ctx.store, { kind: 'missing-replica', nodeId: nodeIds.get(nodeName) ?? null, fileId: file.id, path: vpath, detail: `API read failed: ${err.message}` }).catch(() => undefined);
          },
        });
        if (file.size > 0) {
          try {
            await stream.ready();
          } catch (err) {
            await recordProblem(ctx.store, { kind: 'missing-source', fileId: file.id, path: vpath, detail: `no readable replica of version ${file.version}: ${(err as Error).message}` }).catch(() => undefined);
            throw new ApiError('GGFS_NO_REPLICA', `no reachable node holds version ${file.version} of ${vpath}`, { 'retry-after': '60' });
          }
        }
      } catch (err) {
        release();
        throw err;
      }

      const length = file.size === 0 ? 0 : (range ? range[1] - range[0] + 1 : file.size);
      reply.headers({
        'content-type': 'application/octet-stream',
        'content-length': String(length),
        etag,
        'accept-ranges': 'bytes',
        'last-modified': new Date(Math.floor(file.mtimeUs / 1000)).toUTCString(),
        'x-geogridfs-id': String(file.id),
        'x-geogridfs-version': String(file.version),
        'x-geogridfs-mtime-us': String(file.mtimeUs),
        'x-geogridfs-mode': String(file.mode),
        'cache-control': 'no-store',
        'x-geogridfs-max-concurrent': String(node.maxConcurrent),
      });
      if (range) reply.code(206).header('content-range', `bytes ${range[0]}-${range[1]}/${file.size}`);
      if (file.size === 0) {
        stream.destroy();
        release();
        req.sentBytes = 0;
        return reply.send(Buffer.alloc(0));
      }
      req.sentBytes = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          req.sentBytes = (req.sentBytes ?? 0) + chunk.length;
          cb(null, chunk);
        },
      });
      reply.raw.once('close', () => {
        release();
        stream.destroy();
      });
      // free the slot as soon as the last byte is handed over, before the client can see it and ask again
      counter.once('end', release);
      // unlimited nodes skip the pacer (one stream hop less per chunk)
      const paced = node.bytesPerSec ? ctx.throttle.pace(node.id, node.bytesPerSec) : null;
      stream.on('error', (err) => {
        ctx.log.warn({ path: vpath, err: err.message }, 'content stream failed on every replica');
        (paced ?? counter).destroy(err);
      });
      paced?.on('error', (err) => counter.destroy(err));
      return reply.send((paced ? stream.pipe(paced) : stream).pipe(counter));
    },
  );
}
