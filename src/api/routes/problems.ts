/**
 * POST /api/v1/problems — a backup host reports what it found (a local copy
 * that differs, a local file the grid does not know). GET lists recent ones.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiContext } from '../server.js';
import { recordProblem, recentProblems, type ProblemKind } from '../../meta/problems.js';
import { parsePath } from './common.js';

const REPORTABLE = ['backup-mismatch', 'backup-unknown-file', 'other'] as const;

interface ProblemItem {
  kind: (typeof REPORTABLE)[number];
  path: string;
  detail?: string;
}

export async function registerProblemRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  app.post(
    '/api/v1/problems',
    {
      config: { auth: 'backup' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['items'],
          properties: {
            items: {
              type: 'array',
              maxItems: 100,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['kind', 'path'],
                properties: {
                  kind: { type: 'string', enum: [...REPORTABLE] },
                  path: { type: 'string', maxLength: 4096 },
                  detail: { type: 'string', maxLength: 2000 },
                },
              },
            },
          },
        },
      },
    },
    async (req: FastifyRequest<{ Body: { items: ProblemItem[] } }>) => {
      // validate every path before changing anything
      const items = req.body.items.map((i) => ({ ...i, path: parsePath(i.path) }));
      await ctx.store.txn(async (tx) => {
        for (const i of items) {
          await recordProblem(tx, { kind: i.kind as ProblemKind, backupNodeId: req.backupNode!.id, path: i.path, detail: i.detail ?? '' });
        }
      });
      return { recorded: items.length };
    },
  );

  app.get(
    '/api/v1/problems',
    {
      config: { auth: 'viewer' },
      schema: { querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 } } } },
    },
    async (req: FastifyRequest<{ Querystring: { limit: number } }>) => ({ problems: await recentProblems(ctx.store, req.query.limit) }),
  );
}
