import type { GenerationStore, Logger, Storage } from '@imagegen/shared';

const BATCH = 500;

/** Removes the files of generations whose retention has ended (or that failed or were cancelled). */
export class FileRetentionService {
  constructor(
    private readonly store: GenerationStore,
    private readonly storage: Storage,
    private readonly logger: Logger,
  ) {}

  async sweep(now = Date.now()): Promise<{ removed: number }> {
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
      if (tokens.length < BATCH) return { removed };
    }
  }
}
