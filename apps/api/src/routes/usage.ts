import { Router } from 'express';
import { z } from 'zod';
import { MAX_USAGE_RETENTION_DAYS, TERMINAL_STATUSES, type usageDaySchema, type usageSchema } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { parseQuery, queryWholeNumber } from '../http/validate';

export const usageQuerySchema = z.strictObject({ days: queryWholeNumber(1, MAX_USAGE_RETENTION_DAYS, 30) });

export function usageQuery(raw: Record<string, unknown>): { days: number } {
  return parseQuery(usageQuerySchema, raw);
}

export type UsageDay = z.output<typeof usageDaySchema>;

/** A tenant's usage, one entry per day that has any (newest first), at most `days` days back (Redis's clock). */
export async function readUsage(ctx: ApiContext, tenant: string, opts: { days: number }): Promise<z.output<typeof usageSchema>> {
  const [secs] = await ctx.redis.time();
  const today = Math.floor(Number(secs) / 86400);
  const since = new Date((today - opts.days + 1) * 86400_000).toISOString().slice(0, 10);
  const fields = await ctx.redis.hgetall(ctx.keys.usage(tenant));
  const byDay = new Map<string, UsageDay>();
  for (const [field, value] of Object.entries(fields)) {
    const m = /^(\d{4}-\d{2}-\d{2}):(.+)$/.exec(field);
    if (!m || m[1]! < since) continue;
    const date = m[1]!;
    let day = byDay.get(date);
    if (!day) {
      day = { date, generations: Object.fromEntries(TERMINAL_STATUSES.map((s) => [s, 0])), upstreamCalls: 0, bytesStored: 0 };
      byDay.set(date, day);
    }
    const n = Number(value);
    const metric = m[2]!;
    if (metric.startsWith('generations:')) day.generations[metric.slice('generations:'.length)] = n;
    else if (metric === 'upstreamCalls') day.upstreamCalls = n;
    else if (metric === 'bytesStored') day.bytesStored = n;
  }
  const data = [...byDay.values()].sort((a, b) => (a.date < b.date ? 1 : -1));
  return { object: 'usage', tenant, since, data };
}

/** `GET /v1/usage`: the caller's own counts by day and status. */
export function usageRouter(ctx: ApiContext): Router {
  const router = Router();
  router.get('/', async (req, res) => {
    res.json(await readUsage(ctx, req.tenant as string, usageQuery(req.query)));
  });
  return router;
}
