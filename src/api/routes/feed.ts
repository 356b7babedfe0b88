/**
 * GET /api/v1/feed?after=SEQ&limit=N — files and tombstones changed after a
 * cursor, in seq order. An empty page is the whole cost of an hourly run
 * with nothing new: one indexed query.
 *
 * Per calling backup node: a live file it is not chosen for (see
 * ../assignment.ts) comes with `wanted: false`, and every page names the
 * active backup set's `generation`; when that changes, the agent reads the
 * feed again from 0 to pick up files newly assigned to it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiContext } from '../server.js';
import { feedAfter } from '../../meta/feed.js';
import { touchBackupNode } from '../../meta/backups.js';
import { limitSchema, parseCursor } from './common.js';
import { isAssigned } from '../assignment.js';

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
      const [page, m] = await Promise.all([feedAfter(ctx.store, after, req.query.limit), ctx.membership.get()]);
      await touchBackupNode(ctx.store, req.backupNode!.id, after);
      const me = req.backupNode!.name;
      for (const i of page.items) {
        if (!i.deleted && i.wanted) i.wanted = isAssigned(m, i.id, i.backupTarget, me);
        if (i.renamedTo?.wanted) i.renamedTo.wanted = isAssigned(m, i.renamedTo.id, i.renamedTo.backupTarget, me);
      }
      return { items: page.items, next: String(page.next), more: page.more, settled: page.settled, generation: m.generation };
    },
  );
}
