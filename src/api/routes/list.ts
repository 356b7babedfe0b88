/**
 * GET /api/v1/list?path=/folder&after=NAME&limit=N — a folder's sub-folders
 * and live files, paged by name; used by `geogridfs backup walk`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiContext } from '../server.js';
import { listFolderPage } from '../../meta/feed.js';
import { ApiError } from '../errors.js';
import { limitSchema, parsePath } from './common.js';
import { isAssigned } from '../assignment.js';

export async function registerListRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  app.get(
    '/api/v1/list',
    {
      config: { auth: 'backup' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['path'],
          properties: { path: { type: 'string', maxLength: 4096 }, after: { type: 'string', minLength: 1, maxLength: 255 }, limit: { ...limitSchema, default: 1000 } },
        },
      },
    },
    async (req: FastifyRequest<{ Querystring: { path: string; after?: string; limit: number } }>) => {
      const path = parsePath(req.query.path);
      if (req.query.after !== undefined && (req.query.after.includes('/') || req.query.after.includes('\0'))) throw new ApiError('GGFS_BAD_REQUEST', '"after" is a name, without "/" or NUL');
      const page = await listFolderPage(ctx.store, path, req.query.after ?? null, req.query.limit);
      if (!page) throw new ApiError('GGFS_NOT_FOUND', `no folder ${path}`);
      // `wanted`: this backup node is one of the file's chosen holders
      const m = await ctx.membership.get();
      for (const f of page.files) if (f.wanted) f.wanted = isAssigned(m, f.id, f.backupTarget, req.backupNode!.name);
      return page;
    },
  );
}
