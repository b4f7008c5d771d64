import { WEBHOOK_RETRY_SCHEDULE_MS } from '@imagegen/shared';

/** Random spread on each delay (±20 %) so the retries of many deliveries do not align. */
const JITTER = 0.2;

/** A receiver's Retry-After is honoured up to the longest step of the schedule (scaled with it). */
const MAX_RETRY_AFTER_MS = Math.max(...WEBHOOK_RETRY_SCHEDULE_MS);

/**
 * Delay before retry number `retry` (1 = the first retry), or null when the schedule is done.
 * Scaled by `scale` (WEBHOOK_RETRY_SCALE); a longer Retry-After from the receiver wins.
 */
export function retryDelayMs(retry: number, scale: number, retryAfterMs?: number, random = Math.random): number | null {
  const step = WEBHOOK_RETRY_SCHEDULE_MS[retry - 1];
  if (step === undefined) return null;
  const scheduled = Math.round(step * scale * (1 - JITTER + 2 * JITTER * random()));
  return Math.max(scheduled, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS * scale));
}
