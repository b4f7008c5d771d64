import type { RequestHandler } from 'express';
import type { ApiContext } from '../context';
import { HttpProblem } from './problem';

/** Fixed one-minute windows per tenant, counted in Redis so every API instance shares them. */
export function submissionRateLimit(ctx: ApiContext): RequestHandler {
  const limit = ctx.config.RATE_LIMIT_PER_MINUTE;
  return async (req, res, next) => {
    const minute = Math.floor(Date.now() / 60_000);
    const key = `${ctx.config.QUEUE_PREFIX}:ratelimit:${req.tenant}:${minute}`;
    const [[, count]] = ((await ctx.redis.multi().incr(key).expire(key, 61).exec()) ?? [[null, 0]]) as [[Error | null, number]];
    res.setHeader('RateLimit-Limit', String(limit));
    res.setHeader('RateLimit-Remaining', String(Math.max(0, limit - count)));
    if (count > limit) {
      const retryAfter = String(60 - Math.floor((Date.now() / 1000) % 60));
      return next(new HttpProblem(429, 'Too many requests', `Over ${limit} submissions per minute for this tenant`, undefined, { 'Retry-After': retryAfter }));
    }
    next();
  };
}
