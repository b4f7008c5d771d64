import type { Queue } from 'bullmq';
import { ERROR_CODES, idTimeBound, type GenerationStore, type Logger, type RecordRetention } from '@imagegen/shared';

/**
 * Ends generations that nothing would ever finish (see RecordRetention.findOrphans): one whose
 * job is gone (removed from the dashboard, or trimmed) fails with `job_lost` (an operator who
 * removed a job meant it not to run); one whose job failed unheard fails with the job's reason;
 * an item of a batch whose writing stopped part-way is removed, as its writer would have; an item
 * of a cancelled batch that the cancel did not reach is cancelled.
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

  async sweep(): Promise<{ orphans: number; unwritten: number }> {
    const bound = idTimeBound('gen', (await this.retention.now()) - this.minAgeMs);
    const orphans = await this.retention.findOrphans(bound, (id) => this.generateQueue.toKey(id));
    let ended = 0;
    const uncancelled = new Map<string, { tenant: string; ids: string[] }>();
    for (const orphan of orphans) {
      if (orphan.kind === 'unwritten') continue;
      if (orphan.kind === 'uncancelled') {
        const batchId = orphan.ref.batchId as string;
        const batch = uncancelled.get(batchId) ?? { tenant: orphan.ref.tenant, ids: [] };
        batch.ids.push(orphan.ref.id);
        uncancelled.set(batchId, batch);
        continue;
      }
      const { ref } = orphan;
      const error = orphan.kind === 'lost' ? { code: ERROR_CODES.jobLost, message: 'The job of this generation was removed before it finished' } : { code: ERROR_CODES.internal, message: orphan.reason };
      if ((await this.store.fail(ref, { ...error, retryable: false })) === 'ok') {
        ended++;
        this.logger.warn(orphan.kind === 'lost' ? 'ended a generation whose job is gone' : 'ended a generation whose job failed unheard', { generationId: ref.id, tenant: ref.tenant });
      }
    }
    for (const [batchId, { tenant, ids }] of uncancelled) {
      ended += await this.store.cancelBatchItems({ id: batchId, tenant }, ids);
      this.logger.warn('cancelled items of a cancelled batch that its cancel did not reach', { batchId, tenant, items: ids.length });
    }
    const unwritten = orphans.filter((o) => o.kind === 'unwritten').map((o) => o.ref);
    await this.retention.removeUnwritten(unwritten);
    if (unwritten.length) this.logger.warn('removed items of batches whose writing stopped part-way', { items: unwritten.length, batches: new Set(unwritten.map((r) => r.batchId)).size });
    return { orphans: ended, unwritten: unwritten.length };
  }
}
