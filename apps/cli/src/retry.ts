import { setTimeout as sleep } from 'node:timers/promises';
import { CliError } from './client';
import { noticeOnStderr, type RetryNotice } from './retry-notice';

/** How long a run keeps trying while nothing succeeds, and the pauses between tries. */
export interface RetryPolicy {
  /** Gives up once this long has passed since the first failure of a streak. */
  giveUpAfterMs: number;
  firstDelayMs: number;
  maxDelayMs: number;
}

/** What a request that makes something tries again on: not a 429, the tenant's quota, which trying again within the minute would not change. */
export const retryableButQuota = (err: CliError): boolean => err.retryable && err.status !== 429;

/** Long enough to ride out a restart or a deploy of the API, short enough that a dead one is reported. */
export const DEFAULT_RETRY: RetryPolicy = { giveUpAfterMs: 5 * 60_000, firstDelayMs: 250, maxDelayMs: 10_000 };

/**
 * Runs `attempt` until it succeeds, trying again after a retryable CliError with doubling pauses,
 * until `giveUpAfterMs` has passed since the first failure; anything else (and the last failure)
 * is thrown. `attempt` gets a `succeeded` callback: calling it ends the streak, so a long-lived
 * attempt that made progress (a stream that delivered events) starts the next streak afresh.
 * An aborted `signal` stops waiting at once; `retryable` narrows which CliErrors are tried again;
 * `notice` hears of each failure that will be tried again.
 */
export async function retrying<T>(
  attempt: (succeeded: () => void) => Promise<T>,
  signal?: AbortSignal,
  policy: RetryPolicy = DEFAULT_RETRY,
  retryable: (err: CliError) => boolean = (err) => err.retryable,
  notice: RetryNotice = noticeOnStderr,
): Promise<T> {
  let streakStart: number | undefined;
  let delay = policy.firstDelayMs;
  let failures = 0;
  const succeeded = () => {
    streakStart = undefined;
    delay = policy.firstDelayMs;
    failures = 0;
  };
  for (;;) {
    try {
      return await attempt(succeeded);
    } catch (err) {
      if (!(err instanceof CliError && retryable(err)) || signal?.aborted) throw err;
      streakStart ??= Date.now();
      if (Date.now() - streakStart >= policy.giveUpAfterMs) throw err;
      notice(err, ++failures, delay);
      await sleep(delay, undefined, signal ? { signal } : undefined);
      delay = Math.min(policy.maxDelayMs, delay * 2);
    }
  }
}
