/**
 * GET /healthz (the process is up) and GET /readyz (it can reach PostgreSQL).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ApiContext } from '../server.js';
import { errorBody } from '../errors.js';

export async function registerHealthRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  app.get('/healthz', { config: { auth: 'none' } }, async () => ({ ok: true }));
  app.get('/readyz', { config: { auth: 'none' } }, async (_req, reply: FastifyReply) => {
    try {
      await ctx.store.query('SELECT 1');
      return { ok: true };
    } catch {
      return reply.code(503).send(errorBody('GGFS_UNAVAILABLE', 'the metadata database is unreachable'));
    }
  });
}
