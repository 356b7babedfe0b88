/**
 * Who is asking. Backup hosts send `Authorization: Bearer <token>`; the token
 * is verified against its stored hash in constant time on every request, so
 * a revoked token stops working at once. The dashboard (and /metrics,
 * /api/v1/stats) needs no login from loopback; from elsewhere it takes the
 * configured dashboard token (header, or a cookie set by visiting
 * `/?token=...` once) or any valid backup-node token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { MetaStore } from '../meta/store.js';
import { verifyToken, type BackupNodeRow } from '../meta/backup-nodes.js';
import { ApiError } from './errors.js';

export const DASHBOARD_COOKIE = 'ggfs_dash';

/** The bearer token of a request, or null. Never logged. */
export function bearerOf(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(h.trim());
  return m ? m[1]! : null;
}

function cookieOf(req: FastifyRequest, name: string): string | null {
  const h = req.headers.cookie;
  if (typeof h !== 'string') return null;
  for (const part of h.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        return null;
      }
    }
  }
  return null;
}

/** Constant-time comparison of two secrets of any length. */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** True when the request comes straight from this host (not through a proxy). */
export function isLoopback(req: FastifyRequest): boolean {
  const addr = req.socket.remoteAddress ?? '';
  const local = addr === '127.0.0.1' || addr === '::1' || addr === '::ffff:127.0.0.1' || addr.startsWith('127.');
  return local && req.headers['x-forwarded-for'] === undefined && req.headers.forwarded === undefined;
}

/** The backup node a request authenticates as; throws 401 otherwise. */
export async function requireBackupNode(store: MetaStore, req: FastifyRequest): Promise<BackupNodeRow> {
  const token = bearerOf(req);
  if (token === null) throw new ApiError('GGFS_UNAUTHORIZED', 'missing "Authorization: Bearer <token>"', { 'www-authenticate': 'Bearer realm="geogridfs"' });
  const node = await verifyToken(store, token);
  if (!node) throw new ApiError('GGFS_UNAUTHORIZED', 'the token is invalid or revoked', { 'www-authenticate': 'Bearer realm="geogridfs", error="invalid_token"' });
  return node;
}

/**
 * Admit a dashboard/metrics/stats viewer: loopback, the dashboard token
 * (bearer or cookie), or a valid backup-node token. Returns the backup node
 * when one authenticated, else null.
 */
export async function requireViewer(store: MetaStore, req: FastifyRequest, dashboardToken: string | undefined): Promise<BackupNodeRow | null> {
  const bearer = bearerOf(req);
  const presented = bearer ?? cookieOf(req, DASHBOARD_COOKIE);
  if (presented !== null && dashboardToken !== undefined && sameSecret(presented, dashboardToken)) return null;
  if (bearer !== null) {
    const node = await verifyToken(store, bearer);
    if (node) return node;
  }
  if (isLoopback(req)) return null;
  throw new ApiError('GGFS_UNAUTHORIZED', dashboardToken ? 'the dashboard needs its token (open /?token=...)' : 'the dashboard is only served to loopback (set api.dashboardToken)', {
    'www-authenticate': 'Bearer realm="geogridfs-dashboard"',
  });
}
