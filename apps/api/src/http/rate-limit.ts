import type { Response } from 'express';
import type { ApiContext } from '../context';
import type { RateOutcome, Reservation } from '../services/quotas';
import { HttpProblem } from './problem';

/** Retry-After when the queued cap refuses: room frees as the tenant's work finishes. */
const QUEUED_CAP_RETRY_SECONDS = 10;

function setRateHeaders(res: Response, r: RateOutcome): void {
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
  const { quotas } = ctx;
  const submissions = await quotas.take('submissions', tenant, 1);
  setRateHeaders(res, submissions);
  if (!submissions.ok) throw tooMany(`Over ${submissions.limit} submissions per minute for this tenant`, Math.ceil(submissions.resetMs / 1000));
  const itemLimit = quotas.of(tenant).items;
  if (items > itemLimit) throw tooMany(`A submission of ${items} items is more than this tenant's ${itemLimit} items per minute; split it`, 60);
  const taken = await quotas.take('items', tenant, items);
  if (!taken.ok) {
    await quotas.giveBack('items', tenant, items);
    throw tooMany(`Over ${taken.limit} items per minute for this tenant (${items} asked, ${Math.max(0, taken.remaining)} left)`, Math.ceil(taken.resetMs / 1000));
  }
  const reserved = await quotas.reserveQueued(tenant, items);
  if ('refused' in reserved) {
    await quotas.giveBack('items', tenant, items);
    const { used, cap } = reserved.refused;
    throw tooMany(`This tenant has ${used} items queued or running, and ${items} more would pass its cap of ${cap}; wait for some to finish`, QUEUED_CAP_RETRY_SECONDS);
  }
  return reserved.reservation;
}

/** One generation's worth of `enforceQuota`. */
export function enforceSubmissionRate(ctx: ApiContext, tenant: string, res: Response): Promise<Reservation> {
  return enforceQuota(ctx, tenant, 1, res);
}
