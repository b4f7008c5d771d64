import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { newFileToken, newId, type BatchRecord, type GenerationRecord, type WebhookTarget } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { HttpProblem, notFound } from '../http/problem';
import { IDEMPOTENCY_SECONDS, IdempotencyKey } from '../services/idempotency';
import { outcomeOfLostReply } from '../services/lost-reply';
import type { Reservation } from '../services/quotas';
import type { BatchSubmission } from './batch-body';

/**
 * A batch being written lives this long past its last write (the writer's lease, renewed by every
 * chunk): one whose writer died goes soon after, and a repeat under its Idempotency-Key, told to
 * wait meanwhile, is then accepted anew. The feeder then removes the items it wrote, found on its
 * item list, which lives CLAIM_SECONDS.
 */
export const WRITER_LEASE_SECONDS = 30;
/** An idempotency key claimed for a batch being written lives this long unless the batch is confirmed (or found gone); so does its item list. */
const CLAIM_SECONDS = 600;
/** Items written per script: big enough to cost few round trips, small enough never to block Redis for long. */
export const ITEMS_PER_CHUNK = 500;
/** Items cancelled per step, whose progress is noted after each (the feeder takes over a cancel noted no more). */
const CANCELS_PER_NOTE = 1000;
/** Items read per page when walking a batch (results, archive). */
export const PAGE = 500;

/** The generation events a batch's webhook sends for each item (`batch.completed` is the batch's own). */
function itemWebhook(webhook: WebhookTarget | undefined): WebhookTarget | undefined {
  if (!webhook) return undefined;
  if (!webhook.events) return { url: webhook.url };
  const events = webhook.events.filter((e) => e !== 'batch.completed');
  return events.length ? { url: webhook.url, events } : undefined;
}

/** Accepting, reading and cancelling batches, for one tenant at a time. */
/** Retryable, unlike a key used with another body: Retry-After says so. */
const stillBeingAccepted = () => new HttpProblem(409, 'Conflict', 'A batch with this Idempotency-Key is still being accepted; try again shortly', undefined, { 'Retry-After': '1' });

export class BatchesService {
  constructor(private readonly ctx: ApiContext) {}

  /** The key for a submission's Idempotency-Key (its body hashed a piece at a time). */
  idempotencyKey(tenant: string, key: string, body: unknown): Promise<IdempotencyKey> {
    return IdempotencyKey.ofLarge(this.ctx.keys, tenant, key, body);
  }

  /**
   * The batch a repeat with this key stands for, if the key already holds one that is written
   * (else the create decides); 409 for another body. Read before quotas: a repeat costs none.
   */
  async replayOf(tenant: string, idem: IdempotencyKey): Promise<BatchRecord | null> {
    const heldId = await idem.peek(this.ctx.redis);
    if (heldId === undefined) return null;
    const existing = await this.ctx.batches.getForTenant(heldId, tenant);
    // a repeat sent while the first is still being written is told to wait before it is charged quota
    if (!existing && (await this.ctx.redis.exists(this.ctx.keys.batch(heldId))) === 1) throw stillBeingAccepted();
    return existing;
  }

  /**
   * Writes the batch and every item record in chunked scripts (yielding to the event loop in
   * between), then confirms it, which hands it to the feeder in the workers. Nothing is fed
   * before every item is written; a batch whose writing fails, or whose `signal` is aborted
   * before it is confirmed, is removed again (the abort's reason is thrown).
   */
  async create(
    tenant: string,
    submission: BatchSubmission,
    opts: { idempotency?: IdempotencyKey; reservation?: Reservation; signal?: AbortSignal } = {},
  ): Promise<{ record: BatchRecord; replayed: boolean }> {
    const { batches } = this.ctx;
    const idem = opts.idempotency;
    for (let tries = 0; ; tries++) {
      const id = newId('batch', this.ctx.clock.now());
      const claim = idem?.claim(id, CLAIM_SECONDS);
      const base = {
        id,
        tenant,
        status: 'in_progress' as const,
        total: submission.items.length,
        queued: 0,
        active: 0,
        completed: 0,
        failed: 0,
        cancelled: 0,
        released: 0,
        releasedDone: 0,
        countedTo: 0,
        metadata: submission.metadata ?? null,
        ...(submission.webhook ? { webhook: submission.webhook } : {}),
      };
      const begun = await batches.begin(base, WRITER_LEASE_SECONDS, claim);
      if (begun.outcome === 'held') {
        const key = idem as IdempotencyKey;
        const heldId = key.heldGeneration(begun.value);
        const existing = await batches.getForTenant(heldId, tenant);
        if (existing) return { record: existing, replayed: true };
        // still being written by another request; or gone (its retention ended before its key's,
        // or its writer died), which frees the key
        const gone = await batches.freeClaimIfGone(heldId, { key: key.claim(heldId, 0).key, value: begun.value });
        if (!gone || tries >= 3) throw stillBeingAccepted();
        continue;
      }
      const itemTarget = itemWebhook(submission.webhook);
      const owner = { id, tenant, ...(itemTarget ? { webhook: itemTarget } : {}) };
      try {
        for (let start = 0; start < submission.items.length; start += ITEMS_PER_CHUNK) {
          opts.signal?.throwIfAborted();
          const chunk = submission.items.slice(start, start + ITEMS_PER_CHUNK).map((item, i) => ({
            id: newId('gen', this.ctx.clock.now()),
            fileToken: newFileToken(),
            request: { topic: item.topic, style: item.style, size: item.size },
            metadata: item.metadata ?? null,
            index: start + i,
          }));
          // the chunk's items count in the queued index once written: they leave the reservation with it
          if (!(await batches.addItems(owner, chunk, WRITER_LEASE_SECONDS, CLAIM_SECONDS, opts.reservation?.shrink(chunk.length)))) throw new Error('batch record vanished while its items were written');
          await yieldToLoop();
        }
        opts.signal?.throwIfAborted();
        const confirmed = await batches.confirm({ id, tenant }, idem?.claim(id, IDEMPOTENCY_SECONDS)).catch(async (err: unknown) => {
          // a lost reply may hide a confirm that ran: the batch is being fed, and must not be torn down
          if (await outcomeOfLostReply(err, () => batches.get(id))) return true;
          throw err;
        });
        if (!confirmed) throw new Error('batch record vanished before it was confirmed');
      } catch (err) {
        await batches.abandon({ id, tenant }, claim).catch(() => undefined);
        throw err;
      }
      return { record: { ...base, queued: base.total, createdAt: begun.createdAt }, replayed: false };
    }
  }

  async get(tenant: string, id: string): Promise<BatchRecord> {
    const record = await this.ctx.batches.getForTenant(id, tenant);
    if (!record) throw notFound(`Batch ${id}`);
    return record;
  }

  /**
   * Items in submission order, a page at a time (one range read and one pipelined read each);
   * `from` is the first index. Stops when `keepGoing` says so.
   */
  async *items(batch: BatchRecord, from = 0): AsyncGenerator<{ index: number; id: string; record: GenerationRecord | null }[]> {
    for (let start = from; start < batch.total; start += PAGE) {
      const ids = await this.ctx.batches.itemIds(batch.id, start, PAGE);
      if (ids.length === 0) return;
      const records = await this.ctx.batches.items(ids);
      yield ids.map((id, i) => ({ index: start + i, id, record: records[i] ?? null }));
    }
  }

  /**
   * Stops feeding the batch and cancels every item not finished yet (a page of items per
   * script); finished items stay as they are. Workers running an item abort it at once.
   * Repeating it after a failure part-way finishes the job, and so does the feeder, which
   * watches over a cancelled batch until its cancel is noted done. A batch whose every item has
   * finished has nothing left to cancel: 409, as for a finished generation.
   */
  async cancel(tenant: string, id: string): Promise<BatchRecord> {
    const batch = await this.get(tenant, id);
    if (batch.status === 'completed') throw new HttpProblem(409, 'Conflict', `Batch ${id} is already completed: every item has finished, nothing is left to cancel`);
    const { store, batches } = this.ctx;
    await batches.markCancelled(batch, new Date(await store.now()).toISOString());
    for (let start = 0; ; start += CANCELS_PER_NOTE) {
      const ids = await batches.itemIds(batch.id, start, CANCELS_PER_NOTE);
      await store.cancelBatchItems(batch, ids);
      // a short page is the last: its note says the cancel is done
      const last = ids.length < CANCELS_PER_NOTE;
      await batches.noteCancelProgress(batch, start + ids.length, last);
      if (last) break;
    }
    return this.get(tenant, id);
  }
}
