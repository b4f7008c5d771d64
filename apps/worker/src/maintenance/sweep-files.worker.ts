import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { JOBS, QUEUES, type Logger } from '@imagegen/shared';
import type { FileRetentionService } from './file-retention.service';

/** The `sweep-files` job (scheduled): parse, then sweep. */
export function createMaintenanceWorker(retention: FileRetentionService, logger: Logger, opts: { connection: Redis; prefix: string }): Worker {
  const worker = new Worker(
    QUEUES.maintenance,
    async (job: Job) => {
      if (job.name !== JOBS.sweepFiles.name) throw new UnrecoverableError(`unknown maintenance job ${job.name}`);
      const parsed = JOBS.sweepFiles.schema.safeParse(job.data);
      if (!parsed.success) throw new UnrecoverableError(`invalid ${job.name} payload: ${parsed.error.message}`);
      const result = await retention.sweep();
      if (result.removed > 0 || result.temporary > 0) logger.info('swept files', result);
      return result;
    },
    { connection: opts.connection, prefix: opts.prefix, concurrency: 1 },
  );
  worker.on('error', (err) => logger.error('maintenance worker error', { error: err.message }));
  return worker;
}
