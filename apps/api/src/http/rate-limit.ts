import type { Response } from 'express';
import type { ApiContext } from '../context';
import type { RateState, Reservation } from '../services/quotas';
import { HttpProblem } from './problem';

/** Retry-After when the queued cap refuses: room frees as the tenant's work finishes. */
const QUEUED_CAP_RETRY_SECONDS = 10;

function setRateHeaders(res: Response, r: RateState): void {
  res.setHeader('RateLimit-Limit', String(r.limit));
  res.setHeader('RateLimit-Remaining', String(Math.max(0, r.remaining)));
  res.setHeader('RateLimit-Reset', String(Math.max(0, Math.ceil(r.resetMs / 1000))));
}

const tooMany = (detail: string, retryAfterSeconds: number) =>
  new HttpProblem(429, 'Too many requests', detail, undefined, { 'Retry-After': String(Math.max(1, retryAfterSeconds)) });

/**
 * Checks every quota of `tenant` for a submission of `items` items, shared by every API
 * process through Redis: submissions per minute (one per call), items per minute, and the
 * queued-plus-active cap, which it reserves. Sets `RateLimit-*` (the submissions quota) on
 * `res`; over any quota throws 429 with `Retry-After` and leaves nothing taken but the
 * submission. Call after validation (a rejected body costs nothing) and release the
 * reservation once the records are written.
 */
export async function enforceQuota(ctx: ApiContext, tenant: string, items: number, res: Response): Promise<Reservation> {
  const admission = await ctx.quotas.admit(tenant, items);
  setRateHeaders(res, admission.submissions);
  if (admission.ok) return admission.reservation;
  switch (admission.refused) {
    case 'submissions':
      throw tooMany(`Over ${admission.submissions.limit} submissions per minute for this tenant`, Math.ceil(admission.submissions.resetMs / 1000));
    case 'items': {
      const { limit, remaining, resetMs } = admission.items;
      if (items > limit) throw tooMany(`A submission of ${items} items is more than this tenant's ${limit} items per minute; split it`, 60);
      throw tooMany(`Over ${limit} items per minute for this tenant (${items} asked, ${Math.max(0, remaining)} left)`, Math.ceil(resetMs / 1000));
    }
    case 'queued':
      if (items > admission.cap) throw tooMany(`A submission of ${items} items is more than this tenant's cap of ${admission.cap} items queued or running at once; split it`, QUEUED_CAP_RETRY_SECONDS);
      throw tooMany(
        `This tenant has ${admission.used} items queued or running, and ${items} more would pass its cap of ${admission.cap}; wait for some to finish`,
        QUEUED_CAP_RETRY_SECONDS,
      );
  }
}
