import { setTimeout as sleep } from 'node:timers/promises';
import { redisWriteRefusal } from '@imagegen/shared';

/** The first wait for Redis to take writes again; each next one is twice as long, up to the longest. */
export const REFUSAL_FIRST_WAIT_MS = 1000;
export const REFUSAL_LONGEST_WAIT_MS = 30_000;

/**
 * Runs `run` until it ends some other way than by Redis refusing writes (full under `maxmemory`,
 * unable to save): each refusal is waited out, with growing pauses, and `run` made again from the
 * record's checkpoints, within the same attempt. The refusal is Redis's, not the generation's:
 * counted as attempts, a Redis full for a few minutes would fail every generation in flight.
 * Redis refuses a script only at its first write, so a refused step left nothing half-written. A
 * refusal when `signal` has aborted (a cancel, the worker stopping) is thrown.
 */
export async function waitingOutWriteRefusals<T>(run: () => Promise<T>, signal: AbortSignal, onWait: (refusal: string, waitMs: number) => void): Promise<T> {
  for (let waitMs = REFUSAL_FIRST_WAIT_MS; ; waitMs = Math.min(waitMs * 2, REFUSAL_LONGEST_WAIT_MS)) {
    try {
      return await run();
    } catch (err) {
      const refusal = redisWriteRefusal(err);
      if (refusal === undefined || signal.aborted) throw err;
      onWait(refusal, waitMs);
      await sleep(waitMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) throw err;
    }
  }
}
