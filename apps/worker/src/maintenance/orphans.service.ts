import type { Queue } from 'bullmq';
import { ERROR_CODES, idTimeBound, type GenerationStore, type Logger, type RecordRetention } from '@imagegen/shared';

/**
 * Ends generations whose job is gone (removed from the dashboard, or trimmed) while their
 * record still says queued or active: nothing would ever finish them. They fail with
 * `job_lost`; an operator who removed a job meant it not to run.
 */
export class OrphanService {
  constructor(
    private readonly retention: RecordRetention,
    private readonly store: GenerationStore,
    private readonly generateQueue: Queue,
    private readonly logger: Logger,
    /** Records younger than this are not judged: their job may still be on its way. */
    private readonly minAgeMs: number,
  ) {}

  async sweep(): Promise<{ orphans: number }> {
    const bound = idTimeBound('gen', (await this.retention.now()) - this.minAgeMs);
    const orphans = await this.retention.findOrphans(bound, (id) => this.generateQueue.toKey(id));
    let ended = 0;
    for (const ref of orphans) {
      const outcome = await this.store.fail(ref, { code: ERROR_CODES.jobLost, message: 'The job of this generation was removed before it finished', retryable: false });
      if (outcome === 'ok') {
        ended++;
        this.logger.warn('ended a generation whose job is gone', { generationId: ref.id, tenant: ref.tenant });
      }
    }
    return { orphans: ended };
  }
}
