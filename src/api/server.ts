/**
 * The central HTTP API and dashboard (`geogridfs api`).
 *
 * Fastify with declared schemas (unknown fields rejected), one route file per
 * resource under routes/, one error handler mapping everything to the coded
 * catalog in errors.ts (bad input is always a 4xx), one place that logs every
 * request (to the bounded api_requests table: who, route, status, bytes —
 * never a token or a query string). Stateless apart from the in-process
 * throttle counters, so several instances may run behind a proxy.
 */
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.js';
import type { MetaStore } from '../meta/store.js';
import { isConnectionError } from '../meta/store.js';
import type { BackupNodeRow } from '../meta/backup-nodes.js';
import type { Logger } from '../util/log.js';
import { ApiError, errorBody, type ApiErrorCode } from './errors.js';
import { Throttle } from './throttle.js';
import { MembershipCache } from './assignment.js';
import { RequestLogger } from './request-logger.js';
import { requireBackupNode, requireViewer } from './auth.js';
import { registerFeedRoutes } from './routes/feed.js';
import { registerListRoutes } from './routes/list.js';
import { registerContentRoutes } from './routes/content.js';
import { registerHeldRoutes } from './routes/held.js';
import { registerProblemRoutes } from './routes/problems.js';
import { registerStatsRoutes } from './routes/stats.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerDashboardRoutes } from './routes/dashboard.js';

export type AuthKind = 'backup' | 'viewer' | 'none';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthKind;
  }
  interface FastifyRequest {
    backupNode: BackupNodeRow | null;
    /** body bytes sent, when a route counts them itself (streams) */
    sentBytes: number | null;
  }
}

/** What every route file gets. */
export interface ApiContext {
  store: MetaStore;
  config: Config;
  log: Logger;
  throttle: Throttle;
  requestLog: RequestLogger;
  /** the active backup nodes (which files each one holds), cached briefly */
  membership: MembershipCache;
  startedAt: Date;
}

export interface ApiServer {
  app: FastifyInstance;
  ctx: ApiContext;
  /** listen on config.api.host/port (or the given port); resolves to the base URL */
  listen(port?: number, host?: string): Promise<string>;
  close(): Promise<void>;
}

function errorCodeFor(err: FastifyError): { code: ApiErrorCode; status: number; message: string } {
  if (err.validation) return { code: 'GGFS_BAD_REQUEST', status: 400, message: `invalid request: ${err.message}` };
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { code: 'GGFS_BAD_REQUEST', status: 400, message: `malformed JSON body: ${err.message}` };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { code: 'GGFS_PAYLOAD_TOO_LARGE', status: 413, message: 'the request body is too large' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { code: 'GGFS_UNSUPPORTED_MEDIA_TYPE', status: 415, message: 'send Content-Type: application/json' };
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return { code: 'GGFS_BAD_REQUEST', status: err.statusCode, message: err.message };
  }
  if (isConnectionError(err)) return { code: 'GGFS_UNAVAILABLE', status: 503, message: 'the metadata database is unreachable' };
  return { code: 'GGFS_INTERNAL', status: 500, message: 'internal error (logged on the server)' };
}

/** Build the API server (not yet listening). */
export async function buildApiServer(opts: { store: MetaStore; config: Config; log: Logger }): Promise<ApiServer> {
  const { config, store, log } = opts;
  const tls = config.api.tls ? { cert: readFileSync(config.api.tls.cert), key: readFileSync(config.api.tls.key) } : null;
  const app = (Fastify as unknown as (o: Record<string, unknown>) => FastifyInstance)({
    logger: false,
    ...(tls ? { https: tls } : {}),
    trustProxy: config.api.trustProxy,
    bodyLimit: 1024 * 1024,
    exposeHeadRoutes: false,
    keepAliveTimeout: 65_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 500, ignoreTrailingSlash: false },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true, useDefaults: true, allErrors: false } },
  });
  const ctx: ApiContext = {
    store,
    config,
    log,
    throttle: new Throttle(),
    requestLog: new RequestLogger(store, config.api.requestLogRows, log),
    membership: new MembershipCache(store),
    startedAt: new Date(),
  };

  // JSON only: a text/plain body is a 415, not a string that fails the schema
  app.removeContentTypeParser('text/plain');
  app.decorateRequest('backupNode', null);
  app.decorateRequest('sentBytes', null);

  // One place logs every request, when its response is finished or aborted.
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const started = performance.now();
    reply.raw.once('close', () => {
      const bytes = req.sentBytes ?? 0;
      const route = req.routeOptions.url ?? 'unmatched';
      const entry = {
        at: new Date(),
        backupNodeId: req.backupNode?.id ?? null,
        method: req.method,
        route,
        status: reply.raw.statusCode,
        bytes,
        durationMs: performance.now() - started,
        remote: req.ip ?? null,
      };
      ctx.requestLog.add(entry);
      log.debug({ method: entry.method, route, status: entry.status, bytes, ms: Math.round(entry.durationMs), who: req.backupNode?.name }, 'request');
    });
  });

  // body bytes of non-stream responses (streams count their own)
  app.addHook('onSend', async (req: FastifyRequest, _reply: FastifyReply, payload: unknown) => {
    if (req.sentBytes === null) {
      if (typeof payload === 'string') req.sentBytes = Buffer.byteLength(payload);
      else if (Buffer.isBuffer(payload)) req.sentBytes = payload.length;
    }
    return payload;
  });

  // Authentication per route: config.auth = backup | viewer | none.
  app.addHook('preValidation', async (req: FastifyRequest) => {
    const auth = req.routeOptions.config?.auth ?? 'none';
    if (auth === 'backup') req.backupNode = await requireBackupNode(store, req);
    else if (auth === 'viewer') req.backupNode = await requireViewer(store, req, config.api.dashboardToken);
  });

  app.setErrorHandler((err: FastifyError | ApiError, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof ApiError) {
      reply.headers(err.headers);
      return reply.code(err.statusCode).send(errorBody(err.code, err.message));
    }
    const mapped = errorCodeFor(err as FastifyError);
    if (mapped.status >= 500) log.error({ err: (err as Error).stack, route: req.routeOptions.url }, 'API request failed');
    return reply.code(mapped.status).send(errorBody(mapped.code, mapped.message));
  });
  app.setNotFoundHandler((req: FastifyRequest, reply: FastifyReply) => {
    reply.code(404).send(errorBody('GGFS_ROUTE_NOT_FOUND', `no endpoint ${req.method} ${req.url.split('?')[0]}`));
  });

  await registerHealthRoutes(app, ctx);
  await registerFeedRoutes(app, ctx);
  await registerListRoutes(app, ctx);
  await registerContentRoutes(app, ctx);
  await registerHeldRoutes(app, ctx);
  await registerProblemRoutes(app, ctx);
  await registerStatsRoutes(app, ctx);
  await registerDashboardRoutes(app, ctx);
  await app.ready();

  return {
    app,
    ctx,
    async listen(port?: number, host?: string): Promise<string> {
      const h = host ?? config.api.host;
      await app.listen({ port: port ?? config.api.port, host: h });
      const addr = app.server.address();
      const p = typeof addr === 'object' && addr ? addr.port : port;
      const shown = h.includes(':') ? `[${h}]` : h;
      return `${tls ? 'https' : 'http'}://${shown}:${p}`;
    },
    async close(): Promise<void> {
      // in-flight downloads get a few seconds, then their connections are cut (the agent resumes them)
      const cut = setTimeout(() => app.server.closeAllConnections?.(), 5000);
      cut.unref();
      try {
        await app.close();
      } finally {
        clearTimeout(cut);
      }
      await ctx.requestLog.close();
    },
  };
}
