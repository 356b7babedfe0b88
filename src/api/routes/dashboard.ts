/**
 * GET / — the dashboard page (static HTML/CSS/JS from src/api/dashboard/,
 * no CDN), which polls /api/v1/dashboard. `/?token=...` stores the dashboard
 * token in an HttpOnly cookie and redirects, so the token does not stay in
 * the address bar or in any log.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from '../server.js';
import { DASHBOARD_COOKIE, sameSecret } from '../auth.js';
import { ApiError } from '../errors.js';

/** Where the static files are: src/api/dashboard (also when running from dist/). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../../../src/api/dashboard/', import.meta.url));

const FILES: Record<string, string> = {
  '/': 'index.html',
  '/dashboard.js': 'dashboard.js',
  '/dashboard.css': 'dashboard.css',
};
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

export async function registerDashboardRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  const cache = new Map<string, Buffer>();
  const load = async (name: string) => {
    let b = cache.get(name);
    if (!b) cache.set(name, (b = await readFile(DASHBOARD_DIR + name)));
    return b;
  };
  // the token hand-over: checked here (the page itself needs a viewer)
  app.get(
    '/login',
    { config: { auth: 'none' }, schema: { querystring: { type: 'object', additionalProperties: false, required: ['token'], properties: { token: { type: 'string', minLength: 1, maxLength: 512 } } } } },
    async (req: FastifyRequest<{ Querystring: { token: string } }>, reply: FastifyReply) => {
      const want = ctx.config.api.dashboardToken;
      if (!want || !sameSecret(req.query.token, want)) throw new ApiError('GGFS_UNAUTHORIZED', 'wrong dashboard token');
      const secure = ctx.config.api.tls ? '; Secure' : '';
      reply.header('set-cookie', `${DASHBOARD_COOKIE}=${encodeURIComponent(req.query.token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000${secure}`);
      return reply.redirect('/', 303);
    },
  );
  for (const [route, name] of Object.entries(FILES)) {
    app.get(route, { config: { auth: 'viewer' } }, async (_req, reply: FastifyReply) => {
      const ext = name.split('.').pop()!;
      reply.header('content-type', TYPES[ext]!);
      reply.header('cache-control', 'no-cache');
      reply.header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'");
      return reply.send(await load(name));
    });
  }
}
