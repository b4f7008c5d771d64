import type { Queue } from 'bullmq';
import { finishedJobsKeptSeconds, isValidStoragePrefix, type Logger, type RecordRetention, type Storage } from '@imagegen/shared';

const BATCH = 500;
/** Token removals in flight at once: enough to hide an object store's round trips. */
const REMOVALS_AT_ONCE = 16;

/** A temporary file this old belongs to a write that died: no write of ours takes that long. */
export const STALE_TEMPORARY_MS = 10 * 60_000;

export interface RetentionSweep {
  records: number;
  files: number;
  /** Stale temporary files of writes that died. */
  temporary: number;
  jobs: number;
  /** Usage counters of days past the usage retention. */
  usage: number;
}

/**
 * Removes what finished generations leave once their retention ends: records with their
 * index entries and spooled bytes, files (sooner for failed and cancelled generations),
 * finished jobs past their queue's keeping time (never longer than the records), and temporary
 * files that processes killed mid-write left behind.
 */
export class RetentionService {
  constructor(
    private readonly retention: RecordRetention,
    private readonly storage: Storage,
    /** Queues whose finished jobs the sweep trims (generate, webhooks). */
    private readonly queues: Queue[],
    private readonly retentionSeconds: number,
    private readonly logger: Logger,
    private readonly usageRetentionDays = 90,
  ) {}

  async sweep(): Promise<RetentionSweep> {
    const now = await this.retention.now();
    let records = 0;
    for (let seen = BATCH; seen === BATCH; ) {
      const page = await this.retention.removeDueRecords(now, BATCH, this.retentionSeconds);
      seen = page.seen;
      records += page.removed;
    }
    for (let n = BATCH; n === BATCH; records += n) n = await this.retention.removeDueBatches(now, BATCH);
    const files = await this.removeDueFiles(now);
    let jobs = 0;
    for (const queue of this.queues) {
      const kept = finishedJobsKeptSeconds(queue.name, this.retentionSeconds);
      for (const state of ['completed', 'failed'] as const) {
        for (let n = BATCH; n === BATCH; jobs += n) n = (await queue.clean(kept[state] * 1000, BATCH, state)).length;
      }
    }
    const usage = await this.retention.trimUsage(now, this.usageRetentionDays);
    await this.retention.pruneSpoolIndex();
    return { records, files, temporary: await this.sweepTemporary(), jobs, usage };
  }

  /** Temporary files older than STALE_TEMPORARY_MS; how many were removed. */
  async sweepTemporary(): Promise<number> {
    return (await this.storage.sweepTemporary?.(STALE_TEMPORARY_MS)) ?? 0;
  }

  /**
   * Files of due tokens, a few tokens at once (each is a round trip or two to object storage).
   * A token that cannot be removed now (the store is away) stays due for the next sweep; one
   * that can never be removed (malformed) is forgotten rather than retried forever.
   */
  private async removeDueFiles(now: number): Promise<number> {
    let removed = 0;
    for (;;) {
      const tokens = await this.retention.dueFileTokens(now, BATCH);
      const done: string[] = [];
      let failed = 0;
      // failures in a row: as many as there are lanes says the store itself is failing (down, or
      // hanging until each call times out), and the rest of the page waits for the next sweep
      // rather than fail one token after another; a token that fails alone does not stop the page
      let inARow = 0;
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(REMOVALS_AT_ONCE, tokens.length) }, async () => {
          while (next < tokens.length && inARow < REMOVALS_AT_ONCE) {
            const token = tokens[next++]!;
            if (!isValidStoragePrefix(token)) {
              this.logger.warn('forgetting malformed file token', { tokenStart: token.slice(0, 4) });
              done.push(token);
              continue;
            }
            try {
              await this.storage.removePrefix(token);
              done.push(token);
              removed++;
              inARow = 0;
            } catch (err) {
              failed++;
              inARow++;
              // a few characters tell tokens apart in a log and open nothing
              if (failed === 1) this.logger.warn('could not remove files; they stay due', { tokenStart: token.slice(0, 4), error: (err as Error).message.split(token).join(`${token.slice(0, 4)}…`) });
            }
          }
        }),
      );
      await this.retention.forgetFileTokens(done);
      if (tokens.length < BATCH || failed > 0) return removed;
    }
  }
}
