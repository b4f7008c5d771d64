import type { Response } from 'express';
import type { ApiContext } from '../context';
import { HttpProblem } from './problem';

/**
 * Submissions per tenant in fixed one-minute windows, counted in Redis so every API
 * instance shares them. Called after validation: a rejected body costs no Redis write.
 */
export async function enforceSubmissionRate(ctx: ApiContext, tenant: string, res: Response): Promise<void> {
  const limit = ctx.config.RATE_LIMIT_PER_MINUTE;
  const minute = Math.floor(Date.now() / 60_000);
  const key = ctx.keys.rateLimit(tenant, minute);
  const results = await ctx.redis.multi().incr(key).expire(key, 61).exec();
  const count = Number(results?.[0]?.[1] ?? 0);
  res.setHeader('RateLimit-Limit', String(limit));
  res.setHeader('RateLimit-Remaining', String(Math.max(0, limit - count)));
  if (count > limit) {
    const retryAfter = String(60 - Math.floor((Date.now() / 1000) % 60));
    throw new HttpProblem(429, 'Too many requests', `Over ${limit} submissions per minute for this tenant`, undefined, { 'Retry-After': retryAfter });
  }
}
