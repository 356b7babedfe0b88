/**
 * POST /api/v1/held — a backup host reports files it holds, in batches. The
 * server counts a backup only when id, version and checksum are the file's
 * current ones; the others come back as rejected, with a reason.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiContext } from '../server.js';
import { recordHeld, touchBackupNode, type HeldReport } from '../../meta/backups.js';

const MAX_ID = Number.MAX_SAFE_INTEGER;

export async function registerHeldRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  app.post(
    '/api/v1/held',
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
              maxItems: 1000,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['id', 'version', 'checksum'],
                properties: {
                  id: { type: 'integer', minimum: 1, maximum: MAX_ID },
                  version: { type: 'integer', minimum: 1, maximum: MAX_ID },
                  checksum: { type: 'string', pattern: '^[0-9a-f]{64}$' },
                },
              },
            },
          },
        },
      },
    },
    async (req: FastifyRequest<{ Body: { items: HeldReport[] } }>) => {
      const result = await ctx.store.txn((tx) => recordHeld(tx, req.backupNode!.id, req.body.items));
      await touchBackupNode(ctx.store, req.backupNode!.id);
      return result;
    },
  );
}
