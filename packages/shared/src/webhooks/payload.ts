import type { WebhookEvent } from '../schemas/request';

/** The body of every webhook: `data` is the generation (or batch) exactly as its GET returns it. */
export interface WebhookEnvelope<T = unknown> {
  type: WebhookEvent;
  timestamp: string;
  data: T;
}

/** The body bytes of a delivery, made once and frozen: every attempt sends exactly these. */
export function webhookBody(type: WebhookEvent, atMs: number, data: unknown): string {
  const envelope: WebhookEnvelope = { type, timestamp: new Date(atMs).toISOString(), data };
  return JSON.stringify(envelope);
}

/**
 * Delivery and message ids, derived from the outbox entry id (`<ms>-<seq>`): dispatching the
 * same entry twice (after a crash) makes the same delivery, the same job and the same webhook-id.
 */
export function deliveryIdFor(entryId: string): string {
  const [ms, seq] = entryId.split('-');
  // base36 of a 13-digit ms time is 8-9 characters: pad to 9 so the seq part cannot blur into it
  return `dlv_${BigInt(ms ?? '0').toString(36).padStart(9, '0')}${Number(seq ?? 0).toString(36)}`;
}

/** The Standard Webhooks `webhook-id` of a delivery: the same for every attempt and redelivery. */
export function webhookIdFor(deliveryId: string): string {
  return `msg_${deliveryId.replace(/^dlv_/, '')}`;
}
