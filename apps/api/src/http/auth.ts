import { timingSafeEqual, createHash } from 'node:crypto';
import type { RequestHandler } from 'express';
import { HttpProblem } from './problem';
import type { ApiKey } from '../config';

export const DEFAULT_TENANT = 'default';

declare module 'express-serve-static-core' {
  interface Request {
    tenant?: string;
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * `Authorization: Bearer <key>` or, as the seed sends it, `Authorization: <key>`.
 * With no keys configured every caller is the default tenant (open dev mode).
 */
export function tenantAuth(keys: ApiKey[]): RequestHandler {
  const table = keys.map((k) => ({ tenant: k.tenant, hash: digest(k.key) }));
  return (req, _res, next) => {
    if (table.length === 0) {
      req.tenant = DEFAULT_TENANT;
      return next();
    }
    const header = req.get('authorization')?.trim();
    if (!header) return next(new HttpProblem(401, 'Unauthorized', 'An API key is required: send Authorization: Bearer <key>', undefined, { 'WWW-Authenticate': 'Bearer' }));
    const key = header.replace(/^Bearer\s+/i, '');
    const hash = digest(key);
    const match = table.find((t) => timingSafeEqual(t.hash, hash));
    if (!match) return next(new HttpProblem(401, 'Unauthorized', 'The API key is not valid', undefined, { 'WWW-Authenticate': 'Bearer' }));
    req.tenant = match.tenant;
    next();
  };
}

/** HTTP basic auth for operators (`/admin/*`, `/metrics`). */
export function basicAuth(user: string, password: string): RequestHandler {
  const expected = digest(`${user}:${password}`);
  return (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const m = /^Basic\s+(.+)$/i.exec(header);
    const given = m?.[1] ? Buffer.from(m[1], 'base64').toString('utf8') : '';
    if (m && timingSafeEqual(digest(given), expected)) return next();
    res.setHeader('WWW-Authenticate', 'Basic realm="imagegen admin", charset="UTF-8"');
    next(new HttpProblem(401, 'Unauthorized', 'Operator credentials are required'));
  };
}
