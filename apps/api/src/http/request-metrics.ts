import type { Request, RequestHandler } from 'express';
import type { Metrics } from '@imagegen/shared';

/**
 * Where a router is mounted, from the path: what comes before the route's own segments. An error
 * answered outside its router (a 404 from `/:id`) sees `baseUrl` reset to ''. Every mount is a
 * fixed path, so this names no id; routing ignores case, so it is taken in lower case (as every
 * mount is written), else each spelling of a path (`/V1/Generations`) would make a series of its own.
 */
function mountOf(req: Request, route: string): string {
  if (req.baseUrl) return req.baseUrl.toLowerCase();
  const segments = req.path.split('/').filter(Boolean);
  const own = route.split('/').filter(Boolean).length;
  return segments.length > own ? `/${segments.slice(0, segments.length - own).join('/')}`.toLowerCase() : '';
}

/** The route template (`/v1/generations/:id`), never the path itself: ids would make a series each. */
function routeOf(req: Request): string {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof route !== 'string') return req.baseUrl.toLowerCase().startsWith('/admin/queues') ? '/admin/queues' : 'unmatched';
  const base = mountOf(req, route);
  return `${base}${route === '/' && base ? '' : route}` || '/';
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
