import { z } from 'zod';
import { WEBHOOK_EVENTS } from './request';

/**
 * The body of every webhook: `data` is the generation (or batch) exactly as its GET returns it.
 * `data` is the schema of that GET's answer (the OpenAPI document refers to it by name).
 */
export const webhookEnvelopeSchema = <T extends z.ZodType>(data: T) =>
  z.object({
    type: z.enum(WEBHOOK_EVENTS),
    timestamp: z.iso.datetime().describe('When the event happened (not when this attempt was sent)'),
    data,
  });
export type WebhookEnvelope<T = unknown> = Omit<z.output<ReturnType<typeof webhookEnvelopeSchema<z.ZodUnknown>>>, 'data'> & { data: T };
