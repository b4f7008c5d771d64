import type { WebhookEvent } from '../schemas/request';
import type { WebhookEnvelope } from '../schemas/webhook-body';

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
  const dash = entryId.indexOf('-');
  // a ms time is far below 2^53, so a plain number holds it exactly (no BigInt needed)
  const ms = Number(dash < 0 ? entryId : entryId.slice(0, dash)) || 0;
  const seq = dash < 0 ? 0 : Number(entryId.slice(dash + 1)) || 0;
  // base36 of a 13-digit ms time is 8-9 characters: pad to 9 so the seq part cannot blur into it
  return `dlv_${ms.toString(36).padStart(9, '0')}${seq.toString(36)}`;
}

/** The Standard Webhooks `webhook-id` of a delivery: the same for every attempt and redelivery. */
export function webhookIdFor(deliveryId: string): string {
  return `msg_${deliveryId.startsWith('dlv_') ? deliveryId.slice(4) : deliveryId}`;
}
