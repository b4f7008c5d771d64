import { GenerationFailure } from '@imagegen/shared';

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** 0.2 spreads each delay over ±20 %. */
  jitter: number;
}

/**
 * Delay before retry number `attemptsMade` (1 = first retry): base × 2^(n−1), capped, spread by
 * jitter from the second retry on (the first waits the base delay, as GENERATOR_BACKOFF_MS
 * promises). An upstream's Retry-After wins when it asks for longer, up to the cap: a
 * generation is not parked for a day because an upstream said so.
 */
export function retryDelay(attemptsMade: number, err: unknown, policy: BackoffPolicy, random = Math.random): number {
  const exponential = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attemptsMade - 1));
  const jitter = attemptsMade > 1 ? policy.jitter : 0;
  const jittered = Math.round(exponential * (1 - jitter + 2 * jitter * random()));
  const retryAfter = err instanceof GenerationFailure ? Math.min(err.retryAfterMs ?? 0, policy.maxMs) : 0;
  return Math.max(jittered, retryAfter);
}
