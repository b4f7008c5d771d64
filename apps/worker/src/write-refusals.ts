import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'bullmq';
import { redisNotServing, type Logger } from '@imagegen/shared';

/** The first wait for Redis to take writes again; each next one is twice as long, up to the longest. */
export const REFUSAL_FIRST_WAIT_MS = 1000;
export const REFUSAL_LONGEST_WAIT_MS = 30_000;

/** The wait after one that lasted `previousMs` (0: none yet) while refusals go on. */
export function nextRefusalWaitMs(previousMs: number): number {
  return previousMs <= 0 ? REFUSAL_FIRST_WAIT_MS : Math.min(previousMs * 2, REFUSAL_LONGEST_WAIT_MS);
}

/**
 * Runs `run` until it ends some other way than by Redis refusing writes for a while (full under
 * `maxmemory`, unable to save, a replica or still loading during a failover: redisNotServing):
 * each refusal is waited out, with growing pauses, and `run` made again from the record's
 * checkpoints, within the same attempt. The refusal is Redis's, not the generation's: counted as
 * attempts, a Redis full for a few minutes would fail every generation in flight. Redis refuses a
 * script only at its first write, so a refused step left nothing half-written. A refusal when
 * `signal` has aborted (the generation cancelled) is thrown. A worker that stops waits for it as
 * for any job it runs, up to its shutdown timeout, and then leaves it to another.
 */
export async function waitingOutWriteRefusals<T>(run: () => Promise<T>, signal: AbortSignal, onWait: (refusal: string, waitMs: number) => void): Promise<T> {
  for (let waitMs = nextRefusalWaitMs(0); ; waitMs = nextRefusalWaitMs(waitMs)) {
    try {
      return await run();
    } catch (err) {
      const refusal = redisNotServing(err);
      if (refusal === undefined || signal.aborted) throw err;
      onWait(refusal, waitMs);
      await sleep(waitMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) throw err;
    }
  }
}

/**
 * Keeps a BullMQ worker from spinning while Redis refuses writes. BullMQ takes the next job in a
 * script that writes; refused, it emits an error and asks again at once, with no pause: thousands
 * of errors a second, each logged. On a refusal the worker stops taking jobs (those it runs go on),
 * then takes them again after a wait that doubles, from 1 s up to 30 s, while refusals go on.
 * Returns the hold, for a refusal met by a job (which BullMQ does not see).
 */
export function holdWhileWritesRefused(worker: Worker, logger: Logger, what: string): (err: unknown) => void {
  let waitMs = 0;
  let held = false;
  let closing = false;
  let resumedAt = 0;
  let timer: NodeJS.Timeout | undefined;
  worker.on('closing', () => {
    closing = true;
    clearTimeout(timer);
  });
  const hold = (err: unknown) => {
    const refusal = redisNotServing(err);
    if (refusal === undefined || held || closing) return;
    held = true;
    // refused again within the last wait after taking jobs again: Redis is still full, wait longer
    waitMs = nextRefusalWaitMs(Date.now() - resumedAt <= waitMs ? waitMs : 0);
    logger.warn(`Redis refuses writes: ${what} takes no new jobs for a while`, { error: refusal, retryInMs: waitMs });
    void worker.pause(true).finally(() => {
      timer = setTimeout(() => {
        held = false;
        if (closing) return;
        resumedAt = Date.now();
        void worker.resume();
      }, waitMs).unref();
    });
  };
  worker.on('error', hold);
  return hold;
}
