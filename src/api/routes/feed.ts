/**
 * GET /api/v1/feed?after=SEQ&limit=N — files and tombstones changed after a
 * cursor, in seq order. An empty page is the whole cost of an hourly run
 * with nothing new: one indexed query.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiContext } from '../server.js';
import { feedAfter } from '../../meta/feed.js';
import { touchBackupNode } from '../../meta/backups.js';
import { limitSchema, parseCursor } from './common.js';

export async function registerFeedRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  app.get(
    '/api/v1/feed',
    {
      config: { auth: 'backup' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { after: { type: 'string', maxLength: 32 }, limit: { ...limitSchema, default: 1000 } },
        },
      },
    },
    async (req: FastifyRequest<{ Querystring: { after?: string; limit: number } }>) => {
      const after = parseCursor(req.query.after);
      const page = await feedAfter(ctx.store, after, req.query.limit);
      await touchBackupNode(ctx.store, req.backupNode!.id, after);
      return { items: page.items, next: String(page.next), more: page.more, settled: page.settled };
    },
  );
}
