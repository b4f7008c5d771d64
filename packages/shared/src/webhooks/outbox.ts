import type { Redis } from 'ioredis';
import type { Keys } from '../keys';
import { decodeRecordSnapshot } from '../records/codec';
import { hashOf } from '../records/generation-store';
import { timeReplyMs } from '../redis-clock';
import { WEBHOOK_OUTBOX_MAX_LEN } from '../records/lua/outbox';
import { compose, NOW_MS } from '../records/lua/pieces';
import { presentGeneration, type FileLinks } from '../schemas/generation';
import { webhookTargetUrl } from './target-url';
import { WEBHOOK_EVENTS, webhookTargetSchema, type WebhookEvent, type WebhookTarget } from '../schemas/request';

/** The consumer group every worker's dispatcher reads the outbox with. */
export const OUTBOX_GROUP = 'dispatchers';

/** One outbox entry, ready to become a delivery. */
export interface OutboxEvent {
  entryId: string;
  /** Whose log holds the delivery: a generation id, or a batch id. */
  subject: string;
  tenant: string;
  event: WebhookEvent;
  at: number;
  target: WebhookTarget;
  /** The target URL's host:port, which its deliveries' slots are counted against. */
  host: string;
  /** `data` of the body, as the subject's GET returns it. */
  data: unknown;
}

/**
 * Reads an outbox entry: generation entries (`gen`, written by the record transition) carry the
 * record snapshot; batch entries (`batch`, see appendBatchEvent) carry their data and target.
 * Returns a reason instead when the entry cannot be delivered.
 */
export function parseOutboxEntry(entryId: string, flat: string[], links: FileLinks): OutboxEvent | { invalid: string } {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i] as string] = flat[i + 1] as string;
  const event = f.event as WebhookEvent;
  if (!WEBHOOK_EVENTS.includes(event) || !f.tenant || !f.at) return { invalid: 'missing fields' };
  try {
    if (f.gen && f.record) {
      const snapshot = JSON.parse(f.record) as Record<string, string>;
      // written by the record's own script from a checked record: a cheap check, not the schemas again
      // (the fragment's own fields, WEBHOOK_RECORD_FIELDS, are not the record's: the decoder skips them)
      const record = decodeRecordSnapshot(snapshot);
      if (!record) return { invalid: 'record snapshot without its fields' };
      if (!record.webhook) return { invalid: 'record without webhook' };
      const target = record.webhook;
      return { entryId, subject: f.gen, tenant: f.tenant, event, at: Number(f.at), target, host: httpHostOf(target.url), data: presentGeneration(record, links) };
    }
    if (f.batch && f.webhook && f.data) {
      const target = webhookTargetSchema.parse(JSON.parse(f.webhook));
      return { entryId, subject: f.batch, tenant: f.tenant, event, at: Number(f.at), target, host: httpHostOf(target.url), data: JSON.parse(f.data) };
    }
  } catch (err) {
    return { invalid: (err as Error).message };
  }
  return { invalid: 'neither a generation nor a batch entry' };
}

/** host:port of an http(s) URL; throws for anything else (a snapshot's target was checked in full when submitted). */
function httpHostOf(raw: unknown): string {
  if (typeof raw !== 'string') throw new Error('webhook target without an http(s) URL');
  return webhookTargetUrl(raw).host;
}

const APPEND_LUA = compose(
  NOW_MS,
  `
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ${WEBHOOK_OUTBOX_MAX_LEN}, '*',
  'batch', ARGV[1], 'tenant', ARGV[2], 'event', ARGV[3], 'at', tostring(nowMs()), 'webhook', ARGV[4], 'data', ARGV[5])
`,
);

/**
 * The seam for batch webhooks (`batch.completed`, or item events sent to the batch's target):
 * appends an event to the same outbox the record transition writes, so it is dispatched, signed,
 * retried and logged (under keys.batchDeliveries) like any generation event. Call it in the same
 * MULTI/script as the batch change it reports when the event must never be lost.
 * `data` is the batch exactly as `GET /v1/batches/:id` returns it.
 */
export async function appendBatchEvent(
  redis: Redis,
  keys: Keys,
  event: { batchId: string; tenant: string; type: WebhookEvent; target: WebhookTarget; data: unknown },
): Promise<string> {
  return (await redis.eval(APPEND_LUA, 1, keys.webhookOutbox(), event.batchId, event.tenant, event.type, JSON.stringify(event.target), JSON.stringify(event.data))) as string;
}

/** What the outbox holds now (see outboxBacklog). */
export interface OutboxBacklog {
  /** Events no dispatcher has read yet. */
  waiting: number;
  /** Events a dispatcher has read and not yet settled (delivered, or handed to a job). */
  dispatching: number;
  /** How long the oldest event still in the outbox has been there, by Redis's clock (0 when empty). */
  oldestAgeSeconds: number;
}

/**
 * The outbox's backlog, read in one MULTI (so the counts agree): a settled event is deleted from
 * the stream, so what the stream holds is what the group has pending plus what it has not read,
 * and its first entry is the oldest still waiting. O(1) whatever the stream's length.
 */
export async function outboxBacklog(redis: Redis, keys: Keys): Promise<OutboxBacklog> {
  const stream = keys.webhookOutbox();
  const replies = await redis.multi().xlen(stream).xinfo('GROUPS', stream).xrange(stream, '-', '+', 'COUNT', 1).time().exec();
  if (!replies) throw new Error('the outbox read was discarded');
  type Reply = [Error | null, unknown];
  const [[lenErr, len], [, groups], [, first], [, time]] = replies as [Reply, Reply, Reply, Reply];
  if (lenErr) throw lenErr;
  // no stream yet: XINFO answers an error, and there is nothing to count
  const group = Array.isArray(groups) ? (groups as string[][]).map((g) => hashOf(g)).find((g) => g.name === OUTBOX_GROUP) : undefined;
  const dispatching = Number(group?.pending ?? 0);
  const [oldest] = (first as [string, string[]][] | undefined) ?? [];
  const now = timeReplyMs(time as [string, string]);
  const oldestMs = oldest ? Number(oldest[0].slice(0, oldest[0].indexOf('-'))) : now;
  return { waiting: Math.max(0, Number(len) - dispatching), dispatching, oldestAgeSeconds: Math.max(0, now - oldestMs) / 1000 };
}
