import type { GenerationStore, Logger, Storage } from '@imagegen/shared';

const BATCH = 500;

/** A temporary file this old belongs to a write that died: no write of ours takes that long. */
export const STALE_TEMPORARY_MS = 10 * 60_000;

/**
 * Removes the files of generations whose retention has ended (or that failed or were cancelled),
 * and temporary files that processes killed mid-write left behind.
 */
export class FileRetentionService {
  constructor(
    private readonly store: GenerationStore,
    private readonly storage: Storage,
    private readonly logger: Logger,
  ) {}

  async sweep(now = Date.now()): Promise<{ removed: number; temporary: number }> {
    const removed = await this.sweepExpired(now);
    return { removed, temporary: await this.sweepTemporary() };
  }

  /** Temporary files older than STALE_TEMPORARY_MS; how many were removed. */
  async sweepTemporary(): Promise<number> {
    return (await this.storage.sweepTemporary?.(STALE_TEMPORARY_MS)) ?? 0;
  }

  private async sweepExpired(now: number): Promise<number> {
    let removed = 0;
    for (;;) {
      const tokens = await this.store.dueFileTokens(now, BATCH);
      for (const token of tokens) {
        try {
          await this.storage.removePrefix(token);
          removed++;
        } catch (err) {
          // a malformed token can never be removed: forget it rather than retry it forever
          this.logger.warn('could not remove files', { token, error: (err as Error).message });
        }
      }
      await this.store.forgetFileTokens(tokens);
      if (tokens.length < BATCH) return removed;
    }
  }
}
