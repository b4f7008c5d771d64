import type { Request, RequestHandler } from 'express';
import type { Metrics } from '@imagegen/shared';

/** The route template (`/v1/generations/:id`), never the path itself: ids would make a series each. */
function routeOf(req: Request): string {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof route !== 'string') return req.baseUrl.startsWith('/admin/queues') ? '/admin/queues' : 'unmatched';
  return `${req.baseUrl}${route === '/' && req.baseUrl ? '' : route}` || '/';
}

/** Counts and times every request once it has been answered. */
export function requestMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const end = metrics.httpDuration.startTimer();
    res.once('finish', () => {
      const labels = { method: req.method, route: routeOf(req), status: String(res.statusCode) };
      end(labels);
      metrics.httpRequests.inc(labels);
    });
    next();
  };
}
