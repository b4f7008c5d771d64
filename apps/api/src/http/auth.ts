import { timingSafeEqual, createHash } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { HttpProblem, unavailable } from './problem';
import { headerCount } from './validate';
import type { ApiKey } from '../config';
import { isManagedKeyShape, managedKeyPrefix, type ApiKeyStore } from '../services/api-keys';

export const DEFAULT_TENANT = 'default';

declare module 'express-serve-static-core' {
  interface Request {
    tenant?: string;
    /** The prefix of the managed key the request came with (revocable while a stream is open). */
    managedKey?: string;
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * The request's Authorization header. Two or more are refused: Node keeps the first and drops
 * the rest, so a request carrying two credentials would be acted on with one of them, unseen.
 */
function authorizationOf(req: Request): string | undefined {
  if (headerCount(req, 'authorization') > 1) throw new HttpProblem(400, 'Invalid request', 'Send one Authorization header, not several');
  return req.get('authorization');
}

const unauthorized = (detail: string) => new HttpProblem(401, 'Unauthorized', detail, undefined, { 'WWW-Authenticate': 'Bearer' });

/**
 * `Authorization: Bearer <key>` or, as the seed sends it, `Authorization: <key>`: a key from
 * API_KEYS or a managed one (Redis, read on every request so a revocation holds at once).
 * With neither kind of key every caller is the default tenant (open dev mode).
 */
export function tenantAuth(keys: ApiKey[], managed: ApiKeyStore): RequestHandler {
  const table = keys.map((k) => ({ tenant: k.tenant, hash: digest(k.key) }));
  return (req, _res, next) => {
    void (async () => {
      const header = authorizationOf(req)?.trim();
      if (!header) {
        if (table.length === 0 && !(await managed.required())) {
          req.tenant = DEFAULT_TENANT;
          return;
        }
        throw unauthorized('An API key is required: send Authorization: Bearer <key>');
      }
      const key = header.replace(/^Bearer\s+/i, '');
      const hash = digest(key);
      const match = table.find((t) => timingSafeEqual(t.hash, hash));
      const tenant = match?.tenant ?? (await managed.tenantOf(key));
      if (tenant) {
        req.tenant = tenant;
        if (!match) req.managedKey = managedKeyPrefix(key);
        return;
      }
      // in open dev mode any other header is ignored, but a managed key that is no longer valid
      // (say the last one, just revoked) is refused: a revocation holds whatever is left
      if (table.length === 0 && !isManagedKeyShape(key) && !(await managed.required())) {
        req.tenant = DEFAULT_TENANT;
        return;
      }
      throw unauthorized('The API key is not valid');
    })().then(() => next(), next);
  };
}

/**
 * HTTP basic auth for operators (`/admin/*`, `/metrics`). `password` is undefined while it is not
 * known yet (a generated one kept in Redis, which has not answered): 503 until then.
 */
export function basicAuth(user: string, password: () => string | undefined): RequestHandler {
  // the password can change while the process runs (a generated one reset in Redis): the digest follows it
  let cached: { password: string; digest: Buffer } | undefined;
  return (req, res, next) => {
    let header: string;
    try {
      header = authorizationOf(req) ?? '';
    } catch (err) {
      return next(err);
    }
    const known = password();
    if (known === undefined) {
      return next(unavailable('The admin password is kept in Redis, which has not answered yet; try again shortly, or set ADMIN_PASSWORD'));
    }
    if (cached?.password !== known) cached = { password: known, digest: digest(`${user}:${known}`) };
    const expected = cached.digest;
    const m = /^Basic\s+(.+)$/i.exec(header);
    const given = m?.[1] ? Buffer.from(m[1], 'base64').toString('utf8') : '';
    if (m && timingSafeEqual(digest(given), expected)) return next();
    res.setHeader('WWW-Authenticate', 'Basic realm="imagegen admin", charset="UTF-8"');
    next(new HttpProblem(401, 'Unauthorized', 'Operator credentials are required'));
  };
}
