import { z } from 'zod';
import type { Priority } from './schemas/request';

/**
 * The one catalog of queues, job names and payloads. Producers and consumers
 * both go through it, and consumers re-validate what they dequeue.
 */
export const QUEUES = {
  generate: 'generate',
  maintenance: 'maintenance',
} as const;
export const generateJobSchema = z.strictObject({
  generationId: z.string().regex(/^gen_[A-Za-z0-9]+$/),
  tenant: z.string().min(1),
});
export type GenerateJobData = z.output<typeof generateJobSchema>;

/** Retention and repair: removes what finished generations left once due (and stale temporary files), ends orphaned records. Scheduled, never enqueued by clients. */
export const sweepJobSchema = z.strictObject({});

export const JOBS = {
  generate: { queue: QUEUES.generate, name: 'generate', schema: generateJobSchema },
  sweep: { queue: QUEUES.maintenance, name: 'sweep', schema: sweepJobSchema },
} as const;

/** BullMQ priority: lower number runs first; 0 would mean "no priority" and skip ordering. */
export const PRIORITY_VALUE: Record<Priority, number> = { high: 1, normal: 5, low: 10 };


/** Name of the backoff strategy workers register: exponential with jitter, Retry-After wins when longer. */
export const BACKOFF_TYPE = 'imagegen';

export interface GenerateJobPolicy {
  maxAttempts: number;
  backoffMs: number;
  /** Finished jobs never outlive their records. */
  retentionSeconds: number;
}

/** Options of every generate job. The generation id is the job id, so enqueueing twice is a no-op. */
export function generateJobOptions(generationId: string, priority: Priority, policy: GenerateJobPolicy) {
  return {
    jobId: generationId,
    attempts: policy.maxAttempts,
    backoff: { type: BACKOFF_TYPE, delay: policy.backoffMs },
    priority: PRIORITY_VALUE[priority],
    // records outlive jobs: finished jobs are trimmed, the generation stays readable
    removeOnComplete: { age: Math.min(24 * 3600, policy.retentionSeconds), count: 10_000 },
    removeOnFail: { age: Math.min(7 * 24 * 3600, policy.retentionSeconds), count: 10_000 },
  };
}
