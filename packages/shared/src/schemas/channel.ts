import { z } from 'zod';
import { STATUSES } from './generation';
import { WEBHOOK_EVENTS } from './request';

/**
 * A change published on a generation's channel (records/lua/transition.ts), for live listeners:
 * the event, the status it left, and for an end the record's hash as it ended (field, value, …).
 */
export const generationMessageSchema = z.object({
  type: z.enum([...WEBHOOK_EVENTS, 'generation.queued', 'generation.retrying']),
  status: z.enum(STATUSES),
  id: z.string().optional(),
  record: z.array(z.string()).optional(),
});
export type GenerationMessage = z.output<typeof generationMessageSchema>;

/** A change published on a batch's channel (records/lua/batch.ts): an item's status moved, or the batch ended. */
export const batchMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('item'), id: z.string(), index: z.number().int(), status: z.enum(STATUSES), from: z.enum(STATUSES).optional() }),
  z.object({ type: z.literal('batch.completed'), batch: z.record(z.string(), z.unknown()) }),
]);
export type BatchMessage = z.output<typeof batchMessageSchema>;

/** A channel message read with `schema`, or null for one that is not such a message. */
function readerOf<T extends z.ZodType>(schema: T): (message: string) => z.output<T> | null {
  return (message) => {
    try {
      const parsed = schema.safeParse(JSON.parse(message));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  };
}

export const readGenerationMessage = readerOf(generationMessageSchema);
export const readBatchMessage = readerOf(batchMessageSchema);
