import { z } from 'zod';
import { WEBHOOK_EVENTS } from './request';

export const DELIVERY_STATES = ['pending', 'delivered', 'failed', 'exhausted'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/**
 * One delivery as its log keeps it (JSON in the log's hash, rewritten by the log's scripts): an
 * event for one endpoint, with its frozen body beside it, tried until it ends.
 */
export const deliverySchema = z.object({
  id: z.string(),
  event: z.enum(WEBHOOK_EVENTS),
  webhookId: z.string(),
  url: z.string(),
  tenant: z.string(),
  subject: z.string(),
  createdAt: z.number(),
  state: z.enum(DELIVERY_STATES),
  /** 0 for the dispatch, +1 per redelivery. */
  run: z.number().int().min(0),
  /** Attempts recorded, over all runs (an attempt's number in the log). */
  attempts: z.number().int().min(0),
  /** Attempts recorded in run `runAttemptsOf` (absent: none since the delivery began counting them). */
  runAttempts: z.number().int().min(0).optional(),
  runAttemptsOf: z.number().int().min(0).optional(),
  nextAttemptAt: z.number().optional(),
  /** The host slot member of the attempt recorded last: one attempt's (so a record made again is not made twice). */
  recordedBy: z.string().optional(),
  /** The host slot member of the attempt of an earlier run recorded last (an attempt a redelivery overtook). */
  supersededBy: z.string().optional(),
  /** The call that started the current run (so that call made again does not start another). */
  redeliveredBy: z.string().optional(),
  /** When the current run was started by a redelivery (ms, Redis time). */
  redeliveredAt: z.number().optional(),
  /** The log row of its latest attempt, which the log keeps past its cap. */
  lastSeq: z.number().int().min(1).optional(),
  /** What the last attempt got, while the delivery is failed or exhausted. */
  lastStatus: z.number().int().optional(),
  lastError: z.string().optional(),
});
export type Delivery = z.infer<typeof deliverySchema>;

/** Attempts the delivery has recorded in its current run (0 when it has not counted them). */
export function attemptsInRun(d: Pick<Delivery, 'run' | 'runAttempts' | 'runAttemptsOf'>): number {
  return d.runAttemptsOf === d.run ? (d.runAttempts ?? 0) : 0;
}

/** One attempt as the log's scripts record it: times in ms of Redis's clock. */
export const storedAttemptSchema = z.object({
  id: z.string(),
  event: z.enum(WEBHOOK_EVENTS),
  webhookId: z.string(),
  attempt: z.number().int().min(0),
  at: z.number(),
  status: z.number().int().optional(),
  error: z.string().optional(),
  durationMs: z.number().int().min(0),
  nextAttemptAt: z.number().optional(),
  state: z.enum(DELIVERY_STATES),
});
export type StoredAttempt = z.infer<typeof storedAttemptSchema>;

/** One row of `GET /v1/generations/:id/deliveries`: a stored attempt as the API presents it. */
export const deliveryAttemptSchema = storedAttemptSchema.extend({
  id: z.string().describe('Delivery id (one per event and endpoint)'),
  webhookId: z.string().describe('The webhook-id header: the same for every attempt and redelivery'),
  attempt: z.number().int().min(0).describe('1, 2, ...; 0 for a delivery not tried yet. An attempt cut short on our side (its worker stopped mid-request) is logged too, once the next one starts, with durationMs 0 and an error saying so; so is one a redelivery overtook, until its answer comes'),
  at: z.iso.datetime(),
  status: z.number().int().optional().describe('HTTP status the endpoint answered, if it answered'),
  nextAttemptAt: z.iso.datetime().optional(),
  state: z
    .enum(DELIVERY_STATES)
    .describe(
      'What came of this attempt: pending while the delivery waits for its next attempt, failed once another attempt followed (or for a 410, or a target the SSRF guard refuses), delivered, or exhausted at the end of the schedule (or when the attempt could not be recorded, or workers died during it too often)',
    ),
});
export type DeliveryAttempt = z.infer<typeof deliveryAttemptSchema>;
