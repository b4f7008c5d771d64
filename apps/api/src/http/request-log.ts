import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler } from 'express';
import { pinoHttp } from 'pino-http';
import { pinoOf, type Logger } from '@imagegen/shared';
import { loggablePath } from './loggable-path';

declare module 'express-serve-static-core' {
  interface Request {
    /** The caller's X-Request-Id when it is a sane token, else one made here; echoed back and carried into the job. */
    requestId?: string;
  }
}

/** Letters, digits and `._:-`, up to 128: anything else (or nothing) gets an id of ours. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Probes and scrapes would drown the rest. */
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/** Request id for every request, and one JSON line per finished request (no headers, no body). */
export function requestLogging(logger: Logger): RequestHandler {
  const assignId: RequestHandler = (req, res, next) => {
    const given = req.get('x-request-id');
    req.requestId = given !== undefined && SANE_REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-Id', req.requestId);
    next();
  };
  const p = pinoOf(logger);
  if (!p) return assignId;
  const http = pinoHttp({
    logger: p,
    genReqId: (req) => (req as Request).requestId ?? randomUUID(),
    customAttributeKeys: { reqId: 'requestId', responseTime: 'durationMs' },
    // only what says which request it was: never headers (Authorization), query strings or bodies
    serializers: {
      req: (req: { method: string; url: string; originalUrl?: string }) => ({ method: req.method, path: loggablePath(req.originalUrl ?? req.url) }),
      // a response its client left before it ended has no status of its own (Node's default is 200)
      res: (res: ServerResponse) => (res.writableEnded ? { status: res.statusCode } : { status: res.headersSent ? res.statusCode : null, aborted: true }),
      err: (err: Error) => ({ type: err.name, message: err.message }),
    },
    wrapSerializers: false,
    customProps: (req: IncomingMessage) => {
      const tenant = (req as Request).tenant;
      return tenant ? { tenant } : {};
    },
    customLogLevel: (_req: IncomingMessage, res: ServerResponse, err?: Error) => (err || res.statusCode >= 500 ? 'error' : 'info'),
    // (a finished request is 'request completed', one its client left 'request aborted': pino-http's own messages)
    customErrorMessage: () => 'request failed',
    autoLogging: { ignore: (req: IncomingMessage) => QUIET_PATHS.has(loggablePath(req.url ?? '')) },
    quietReqLogger: true,
  });
  return (req, res, next) => assignId(req, res, () => http(req, res, next));
}
