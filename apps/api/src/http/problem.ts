import type { ErrorRequestHandler, Response } from 'express';
import { redisNotServing, redisWriteRefusal, storageErrorText, type FieldError, type Logger } from '@imagegen/shared';
import { loggablePath } from './loggable-path';

/** An RFC 9457 problem: every 4xx/5xx body of the API. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly errors?: FieldError[],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

const TYPE_BASE = 'https://imagegen.dev/problems/';

const SLUGS: Record<number, string> = {
  400: 'invalid-request',
  401: 'unauthorized',
  404: 'not-found',
  405: 'method-not-allowed',
  408: 'request-timeout',
  409: 'conflict',
  413: 'payload-too-large',
  415: 'unsupported-media-type',
  416: 'range-not-satisfiable',
  429: 'rate-limited',
  431: 'headers-too-large',
  500: 'internal-error',
  502: 'generation-failed',
  503: 'unavailable',
};

/** The members of a problem's problem+json body. */
export function problemBody(p: HttpProblem): { type: string; title: string; status: number; detail: string; errors?: FieldError[] } {
  return {
    type: `${TYPE_BASE}${SLUGS[p.status] ?? 'error'}`,
    title: p.title,
    status: p.status,
    detail: p.detail,
    ...(p.errors ? { errors: p.errors } : {}),
  };
}

/** The problem+json body of a problem. */
export function problemJson(p: HttpProblem): string {
  return JSON.stringify(problemBody(p));
}

export function sendProblem(res: Response, p: HttpProblem): void {
  for (const [k, v] of Object.entries(p.headers)) res.setHeader(k, v);
  res.status(p.status).type('application/problem+json').send(problemJson(p));
}

export const invalid = (detail: string, errors?: FieldError[]) => new HttpProblem(400, 'Invalid request', detail, errors);
export const notFound = (what: string) => new HttpProblem(404, 'Not found', `${what} was not found`);
export const unavailable = (detail = 'The job store (Redis) is not reachable; try again shortly') =>
  new HttpProblem(503, 'Service unavailable', detail, undefined, { 'Retry-After': '5' });
/** Redis answers but takes no writes (full under maxmemory, or unable to save): that lasts until memory is freed. */
const writesRefused = () =>
  new HttpProblem(503, 'Service unavailable', 'The job store (Redis) refuses writes now: it is full or cannot save; try again later', undefined, { 'Retry-After': '30' });

/** A storage call; its failure is the file store's (503), not the request's. */
export async function fromStorage<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch {
    throw unavailable('The file store is not reachable; try again shortly');
  }
}

/**
 * What the Cluster client says when a Cluster cannot serve now: the master for our slot down or
 * moving (redirections run out, CLUSTERDOWN, TRYAGAIN), no node to learn the slots from. Redis's
 * own such answers (a master demoted or starting, busy with a script) are redisNotServing's.
 */
const CLUSTER_NOT_SERVING = /Too many Cluster redirections|CLUSTERDOWN|TRYAGAIN|Failed to refresh slots cache|None of startup nodes is available/;

/** Recognises a failure to talk to Redis, whichever layer raised it. */
export function isRedisDown(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: string };
  const message = e?.message ?? '';
  return (
    e?.name === 'MaxRetriesPerRequestError' ||
    e?.name === 'ClusterAllFailedError' ||
    /Stream isn't writeable|Connection is closed|enableOfflineQueue|Command timed out|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE/.test(message) ||
    CLUSTER_NOT_SERVING.test(message) ||
    redisNotServing(err) !== undefined ||
    e?.code === 'ECONNREFUSED'
  );
}

/** Maps anything thrown to problem+json; body-parser's own errors keep their status. Never a stack trace. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    if (res.headersSent) {
      res.end();
      return;
    }
    if (err instanceof HttpProblem) return sendProblem(res, err);
    const e = err as { type?: string; status?: number; statusCode?: number; message?: string };
    switch (e.type) {
      case 'entity.parse.failed':
        return sendProblem(res, invalid('The body is not valid JSON', [{ path: '(body)', message: 'is not valid JSON' }]));
      case 'charset.invalid':
        return sendProblem(res, invalid('The body is not valid UTF-8', [{ path: '(body)', message: 'is not valid UTF-8' }]));
      case 'entity.too.large':
        return sendProblem(res, new HttpProblem(413, 'Payload too large', 'The request body is larger than the limit'));
      case 'encoding.unsupported':
      case 'charset.unsupported':
        return sendProblem(res, new HttpProblem(415, 'Unsupported media type', e.message ?? 'Unsupported encoding'));
      case 'request.aborted':
        return sendProblem(res, invalid('The request was aborted'));
    }
    const refusal = redisWriteRefusal(err);
    if (refusal) {
      // the operators' cue: nothing can be submitted or change until Redis has memory again
      logger.error('Redis refuses writes: answered 503', { method: req.method, path: loggablePath(req.originalUrl), error: refusal });
      return sendProblem(res, writesRefused());
    }
    // answering, but not taking writes for a moment: a failover, a load after a restart, a long script
    if (redisNotServing(err) !== undefined) return sendProblem(res, unavailable('The job store (Redis) is not taking writes for a moment (failing over, loading or busy); try again shortly'));
    if (isRedisDown(err)) return sendProblem(res, unavailable());
    const status = e.status ?? e.statusCode;
    if (status && status >= 400 && status < 500) return sendProblem(res, new HttpProblem(status, 'Request error', 'The request could not be processed'));
    // neither the path (a file URL) nor the message (a file system names the file) may give a file token away
    logger.error('unhandled error', { method: req.method, path: loggablePath(req.originalUrl), error: storageErrorText(err) });
    sendProblem(res, new HttpProblem(500, 'Internal error', 'Something went wrong on our side'));
  };
}
