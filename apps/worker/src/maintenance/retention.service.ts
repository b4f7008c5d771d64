import type { Queue } from 'bullmq';
import type { Logger, RecordRetention, Storage } from '@imagegen/shared';

const BATCH = 500;

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
 * finished jobs, which never outlive their records, and temporary files that processes
 * killed mid-write left behind.
 */
export class RetentionService {
  constructor(
    private readonly retention: RecordRetention,
    private readonly storage: Storage,
    private readonly generateQueue: Queue,
    private readonly retentionSeconds: number,
    private readonly logger: Logger,
    private readonly usageRetentionDays = 90,
  ) {}

  async sweep(): Promise<RetentionSweep> {
    const now = await this.retention.now();
    let records = 0;
    for (let n = BATCH; n === BATCH; records += n) n = await this.retention.removeDueRecords(now, BATCH);
    const files = await this.removeDueFiles(now);
    let jobs = 0;
    for (const state of ['completed', 'failed'] as const) {
      for (let n = BATCH; n === BATCH; jobs += n) n = (await this.generateQueue.clean(this.retentionSeconds * 1000, BATCH, state)).length;
    }
    const usage = await this.retention.trimUsage(now, this.usageRetentionDays);
    return { records, files, temporary: await this.sweepTemporary(), jobs, usage };
  }

  /** Temporary files older than STALE_TEMPORARY_MS; how many were removed. */
  async sweepTemporary(): Promise<number> {
    return (await this.storage.sweepTemporary?.(STALE_TEMPORARY_MS)) ?? 0;
  }

  private async removeDueFiles(now: number): Promise<number> {
    let removed = 0;
    for (;;) {
      const tokens = await this.retention.dueFileTokens(now, BATCH);
      for (const token of tokens) {
        try {
          await this.storage.removePrefix(token);
          removed++;
        } catch (err) {
          // a malformed token can never be removed: forget it rather than retry it forever
          this.logger.warn('could not remove files', { token, error: (err as Error).message });
        }
      }
      await this.retention.forgetFileTokens(tokens);
      if (tokens.length < BATCH) return removed;
    }
  }
}
