import { z } from 'zod';
import { BATCH_REDELIVERABLE_STATES, RECOVERABLE_STATES } from '../catalog';
import { deliveryAttemptSchema } from './delivery';
import { publicBatchSchema } from './batch';
import { publicGenerationSchema } from './generation';
import { WEBHOOK_EVENTS } from './request';

/**
 * Response bodies besides the generation itself, one schema each; the OpenAPI document is
 * generated from these, and the tests check the routes' answers against them.
 */

export const problemSchema = z
  .object({
    type: z.string().describe('URI naming the kind of problem'),
    title: z.string(),
    status: z.number().int().min(400).max(599),
    detail: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional().describe('One entry per invalid field'),
  })
  .describe('application/problem+json (RFC 9457)');

/** One page of a cursor-paged listing. */
const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({
    object: z.literal('list'),
    data: z.array(item),
    nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last. A page looks at no more than 1,000 index entries, so one that passes many records removed by retention can come back short, even empty, with a nextCursor: follow it until it is null'),
    hasMore: z.boolean(),
  });

export const generationListSchema = pageOf(publicGenerationSchema);

export const deliveryListSchema = z.object({ object: z.literal('list'), data: z.array(deliveryAttemptSchema) });

export const redeliverySchema = z
  .object({ id: z.string(), webhookId: z.string(), event: z.enum(WEBHOOK_EVENTS), state: z.literal('pending') });

/** `POST /v1/batches/:id/deliveries/redeliver`: which of the batch's deliveries (its own and its items') to send again. */
export const batchRedeliverSchema = z.strictObject({
  states: z
    .array(z.enum(BATCH_REDELIVERABLE_STATES))
    .min(1)
    .default([...RECOVERABLE_STATES])
    .describe('Deliveries now in these states are sent again: failed (a 410, or a refused target), exhausted (the schedule ran out), pending (waiting for a retry, sent now)'),
});

/** `POST /v1/webhooks/recover`: which of the tenant's deliveries that did not arrive to send again. */
/**
 * An ISO 8601 time from 1970 on (what Redis time can hold). Its T and Z are read in upper case
 * only, which `format: date-time` (RFC 3339) does not say: the description does.
 */
// (a value that is no time at all is told so by the format alone, not also said to be before 1970)
const epochTime = (description: string) =>
  z.iso
    .datetime({ offset: true })
    .refine((v) => !(Date.parse(v) < 0), { error: 'must not be before 1970-01-01T00:00:00Z' })
    .describe(`${description}. From 1970 on, with an upper-case T and a Z or an offset: 2025-06-01T12:00:00Z`);

export const webhookRecoverSchema = z.strictObject({
  since: epochTime('Deliveries whose last attempt ended them (failed or exhausted) at or after this time'),
  until: epochTime('... and at or before this time; default and latest: now').optional(),
  states: z
    .array(z.enum(RECOVERABLE_STATES))
    .min(1)
    .default([...RECOVERABLE_STATES])
    .describe('failed (answered 410, or the target was refused), exhausted (the schedule ran out), or both'),
});

const recoveryShape = {
  id: z.string().regex(/^rcv_[a-z0-9]+$/),
  status: z.enum(['running', 'completed', 'failed']).describe('failed: it stopped after repeated errors; what it had not reached is still as it was, so asking again finishes it'),
  scanned: z.number().int().min(0).describe('Deliveries looked at so far: for a window, every ended one in it (some may have arrived since); for a batch, those in the asked states'),
  redelivered: z.number().int().min(0).describe('Deliveries sent again so far, each under its own webhook-id with a fresh schedule'),
  createdAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().optional(),
};

export const webhookRecoverySchema = z
  .union([
    z.object({ ...recoveryShape, since: z.iso.datetime(), until: z.iso.datetime(), states: z.array(z.enum(RECOVERABLE_STATES)) }).describe('A recovery of a time window (POST /v1/webhooks/recover)'),
    z
      .object({ ...recoveryShape, batchId: z.string().describe("The batch whose deliveries (its items' and its own) it sends again"), states: z.array(z.enum(BATCH_REDELIVERABLE_STATES)) })
      .describe("A redelivery of a batch's deliveries (POST /v1/batches/{id}/deliveries/redeliver)"),
  ])
  .describe('A recovery of webhook deliveries, running in the background');

/** One row of `GET /v1/webhooks/deliveries`: a delivery of the tenant's that did not arrive. */
export const failedDeliverySchema = z.object({
  id: z.string().describe('Delivery id: redeliver it under its generation or batch, or recover a window'),
  event: z.enum(WEBHOOK_EVENTS),
  webhookId: z.string(),
  generationId: z.string().optional().describe("The generation whose event it is (a batch item's too)"),
  batchId: z.string().optional().describe('The batch whose batch.completed it is'),
  state: z.enum(RECOVERABLE_STATES).describe('failed (answered 410, or the target was refused) or exhausted (the schedule ran out)'),
  attempts: z.number().int().min(1),
  endedAt: z.iso.datetime().describe('When its last attempt ended it'),
  status: z.number().int().optional().describe('What the endpoint answered last, if it answered'),
  error: z.string().optional().describe('What went wrong last'),
});

export const failedDeliveryListSchema = pageOf(failedDeliverySchema);

export const webhookSecretSchema = z.object({ secret: z.string().regex(/^whsec_/) });

export const seedResponseSchema = z
  .object({
    downloadUrl: z.url(),
    id: z.string(),
    statusUrl: z.url(),
    thumbnails: z.array(z.any()).optional(),
    placeholder: z.string().optional(),
  });

export const seedAcceptedSchema = z.object({ id: z.string(), status: z.string(), statusUrl: z.url() });

export const healthSchema = z.object({ status: z.string() });
/** `/readyz` when ready; when Redis does not answer it is a 503 problem like every other error. */
export const readinessSchema = z.object({ status: z.literal('ready'), redis: z.literal('up') });

export const batchListSchema = pageOf(publicBatchSchema);

/** A managed API key as listed: the key itself is shown once, when it is made. */
export const apiKeySchema = z.object({ id: z.string(), prefix: z.string(), createdAt: z.iso.datetime() });
export const createdApiKeySchema = apiKeySchema.extend({ key: z.string().describe('Shown this once; only its SHA-256 is kept'), tenant: z.string() });
export const apiKeyListSchema = z.object({ object: z.literal('list'), tenant: z.string(), data: z.array(apiKeySchema) });

/** One day of a tenant's usage (UTC, Redis's clock). */
export const usageDaySchema = z.object({
  date: z.string().describe('YYYY-MM-DD'),
  generations: z.record(z.string(), z.number().int()).describe('Generations that ended that day, by final status'),
  upstreamCalls: z.number().int(),
  bytesStored: z.number().int(),
});
export const usageSchema = z.object({ object: z.literal('usage'), tenant: z.string(), since: z.string(), data: z.array(usageDaySchema).describe('Days with any usage, newest first') });
