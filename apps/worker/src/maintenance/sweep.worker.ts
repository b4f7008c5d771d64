import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { JOBS, QUEUES, type Logger } from '@imagegen/shared';
import type { OrphanService } from './orphans.service';
import type { RetentionService } from './retention.service';
import { holdWhileWritesRefused } from '../write-refusals';

/** The scheduled `sweep` job: retention first, then orphaned records. */
export function createMaintenanceWorker(retention: RetentionService, orphans: OrphanService, logger: Logger, opts: { connection: Redis; prefix: string }): Worker {
  const worker = new Worker(
    QUEUES.maintenance,
    async (job: Job) => {
      if (job.name !== JOBS.sweep.name) throw new UnrecoverableError(`unknown maintenance job ${job.name}`);
      const parsed = JOBS.sweep.schema.safeParse(job.data);
      if (!parsed.success) throw new UnrecoverableError(`invalid ${job.name} payload: ${parsed.error.message}`);
      const result = { ...(await retention.sweep()), ...(await orphans.sweep()) };
      if (Object.values(result).some((n) => n > 0)) logger.info('maintenance sweep', result);
      return result;
    },
    { connection: opts.connection, prefix: opts.prefix, concurrency: 1 },
  );
  worker.on('error', (err) => logger.error('maintenance worker error', { error: err.message }));
  holdWhileWritesRefused(worker, logger, 'the maintenance worker');
  return worker;
}
