import { z } from 'zod';
import { publicGenerationSchema, STATUSES, TERMINAL_STATUSES } from './generation';
import { generationRequestSchema, metadataSchema, sizeSchema, storedMetadataSchema, styleSchema, webhookTargetSchema } from './request';

/** Items one batch may hold. */
export const MAX_BATCH_ITEMS = 50_000;

/** One batch item: the seed request plus its own metadata. */
export const batchItemSchema = generationRequestSchema.extend({ metadata: metadataSchema.nullable().optional() });
export type BatchItem = z.output<typeof batchItemSchema>;

/** `defaults` fill what an item leaves out (the request's own defaults apply after them). */
export const batchDefaultsSchema = z.strictObject({ style: styleSchema.optional(), size: sizeSchema.optional() });
export type BatchDefaults = z.output<typeof batchDefaultsSchema>;

/** Everything of `POST /v1/batches` except the items, which are validated one by one. */
export const batchEnvelopeSchema = z.strictObject({
  items: z.array(z.unknown(), { error: 'must be an array of items' }).min(1, 'must hold at least one item').max(MAX_BATCH_ITEMS, `must hold at most ${MAX_BATCH_ITEMS} items`),
  defaults: batchDefaultsSchema.optional(),
  webhook: webhookTargetSchema.optional(),
  metadata: metadataSchema.nullable().optional(),
});
export type BatchEnvelope = z.output<typeof batchEnvelopeSchema>;

export const BATCH_STATUSES = ['in_progress', 'completed'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

const isoTime = z.iso.datetime();
const count = z.number().int().nonnegative();

/**
 * Everything kept about one batch, in its own Redis hash. The item counts move in the same
 * script as each item's status (records/lua/transition.ts); `released` is how many items
 * (from the first, in order) the feeder has handed to the generate queue.
 */
export const batchRecordSchema = z.object({
  id: z.string(),
  tenant: z.string(),
  status: z.enum(BATCH_STATUSES),
  total: count,
  queued: count,
  active: count,
  completed: count,
  failed: count,
  cancelled: count,
  released: count,
  /**
   * Of the released items below `countedTo`, those that have ended (absent on a batch made before
   * they were counted; a name of its own, so no process of an earlier version counts it its way).
   */
  releasedDone: count.optional(),
  /** How far `releasedDone` accounts for: the cursor, unless a feeder that does not count moved it further. */
  countedTo: count.optional(),
  metadata: storedMetadataSchema.nullable(),
  webhook: webhookTargetSchema.optional(),
  createdAt: isoTime,
  completedAt: isoTime.optional(),
  cancelledAt: isoTime.optional(),
});
export type BatchRecord = z.output<typeof batchRecordSchema>;

export const batchCountsSchema = batchRecordSchema.pick({ queued: true, active: true, completed: true, failed: true, cancelled: true });
export type BatchCounts = z.output<typeof batchCountsSchema>;

/** An item that ended, as the batch's events stream tells it (`item`) and its finished-items stream keeps it. */
export const finishedItemSchema = z.object({
  index: count,
  id: z.string(),
  status: z.enum(TERMINAL_STATUSES),
});
export type FinishedItem = z.output<typeof finishedItemSchema>;

/** One line of `GET /v1/batches/:id/results` (and of the archive's results.jsonl): an item's outcome as its GET tells it, `expired` once its record is gone. */
export const batchResultLineSchema = z.object({
  index: count,
  id: z.string(),
  status: z.enum([...STATUSES, 'expired']),
  result: publicGenerationSchema.shape.result,
  error: publicGenerationSchema.shape.error,
});
export type BatchResultLine = z.output<typeof batchResultLineSchema>;

/** The batch as clients see it (GET, lists, events, `batch.completed`). */
export const publicBatchSchema = batchRecordSchema.pick({ id: true, status: true, total: true, metadata: true, createdAt: true, completedAt: true, cancelledAt: true }).extend({
  object: z.literal('batch'),
  counts: batchCountsSchema,
  /** Finished items (completed, failed or cancelled) out of all, 0..100. */
  progress: z.number().int().min(0).max(100),
});
export type PublicBatch = z.output<typeof publicBatchSchema>;

export function presentBatch(b: BatchRecord): PublicBatch {
  const finished = b.completed + b.failed + b.cancelled;
  const out: PublicBatch = {
    id: b.id,
    object: 'batch',
    status: b.status,
    total: b.total,
    counts: { queued: b.queued, active: b.active, completed: b.completed, failed: b.failed, cancelled: b.cancelled },
    progress: b.total === 0 ? 100 : Math.floor((finished * 100) / b.total),
    metadata: b.metadata,
    createdAt: b.createdAt,
  };
  if (b.completedAt) out.completedAt = b.completedAt;
  if (b.cancelledAt) out.cancelledAt = b.cancelledAt;
  return out;
}
