import { Job, type Queue } from 'bullmq';
import type { Delivery, DeliveryLog, DeliveryState, Logger, Metrics, WebhookSecrets } from '@imagegen/shared';
import type { HostHealth, HostLimiter } from './host-limiter';
import { retryDelayMs } from './schedule';
import type { SendResult, WebhookSender } from './sender';
import type { AttemptBatcher, Settled } from './attempt-batcher';

/** What one attempt of a delivery needs, wherever it runs (the dispatcher's first try, or a job). */
export interface AttemptDeps {
  log: DeliveryLog;
  secrets: WebhookSecrets;
  limiter: HostLimiter;
  /** The Redis steps of attempts, batched per turn of the event loop. */
  batcher: AttemptBatcher;
  sender: WebhookSender;
  /** The webhooks queue, to wake parked deliveries. */
  queue: Queue;
  logger: Logger;
  retryScale: number;
  /** Attempt outcomes and latency, when this process exports metrics. */
  metrics?: Metrics;
}

export interface AttemptResult {
  state: DeliveryState;
  /** Set when another attempt follows (state pending). */
  retryInMs?: number;
  status?: number;
  error?: string;
  /** 'stale' when a redelivery started meanwhile (that run carries on), 'missing' when the log is gone. */
  recorded: 'ok' | 'missing' | 'stale';
  /** The outbox entry given to the attempt was acknowledged with it. */
  entrySettled: boolean;
}

function healthOf(result: SendResult): HostHealth {
  if (result.hostTrouble) return 'trouble';
  return result.status !== undefined ? 'up' : 'unknown';
}

/** The delivery's state after an attempt; `retry` is the number of the retry that would follow (1 = first). */
export function stateAfter(result: SendResult, retry: number, scale: number): { state: DeliveryState; retryInMs?: number } {
  if (result.ok) return { state: 'delivered' };
  // 410 Gone: the receiver says this endpoint is no more; a target the SSRF guard refuses (its name
  // now resolves inside) stays refused however often it is tried
  if (result.status === 410 || result.refused) return { state: 'failed' };
  const delay = retryDelayMs(retry, scale, result.retryAfterMs);
  return delay === null ? { state: 'exhausted' } : { state: 'pending', retryInMs: delay };
}

/** Gives a host slot back; the freed slot goes to the oldest parked delivery (if it is not parked yet, its own timer wakes it). */
export async function releaseSlot(deps: AttemptDeps, host: string, member: string, health: HostHealth): Promise<void> {
  afterRelease(deps, host, await deps.limiter.release(host, member, health));
}

/** Gives back the slot and the start mark of an attempt that sent nothing: not one cut short, for the next attempt to log. */
export async function abandonAttempt(deps: AttemptDeps, delivery: Pick<Delivery, 'subject' | 'id'>, host: string, member: string): Promise<void> {
  await Promise.all([releaseSlot(deps, host, member, 'unknown'), deps.log.clearMark(delivery, member)]);
}

function afterRelease(deps: AttemptDeps, host: string, { opened, wake }: Pick<Settled, 'opened' | 'wake'>): void {
  if (opened) deps.logger.warn('webhook host failing: holding its deliveries back', { host });
  if (wake) {
    void Job.fromId(deps.queue, wake)
      .then((parked) => parked?.promote())
      .catch(() => undefined);
  }
}

export interface FirstAttempt {
  /** The outbox entry the delivery was made from: settled with the attempt unless another attempt follows. */
  entryId: string;
  /** Called once the request is done and its settling queued (before the attempt is recorded), with what follows. */
  onSent: (next: { state: DeliveryState; retryInMs?: number }) => void;
}

/**
 * One attempt of a delivery whose host slot is held: sign the frozen body with every secret
 * that signs now, send it, then record the attempt and give the slot back in one step; the slot
 * is given back whatever happens. `attempt` is this attempt's number in its run (1 = the first).
 * A job's attempt is first marked started in the log, so that one cut short is logged when the
 * next starts (a dispatcher's is marked with its slot, see AttemptBatcher).
 */
export async function attemptDelivery(
  deps: AttemptDeps,
  loaded: { delivery: Delivery; body: string },
  host: string,
  member: string,
  attempt: number,
  first?: FirstAttempt,
): Promise<AttemptResult> {
  const { delivery, body } = loaded;
  let released = false;
  let sent = false;
  try {
    const [signing, marked] = await Promise.all([deps.secrets.signing(delivery.tenant), first ? ('ok' as const) : deps.log.markStarted(delivery, member)]);
    // gone, ended or redelivered since the job read it: nothing to send in this run
    if (marked !== 'ok') return { state: delivery.state, recorded: marked, entrySettled: false };
    sent = true;
    const result = await deps.sender.send({ url: delivery.url, webhookId: delivery.webhookId, body, secrets: signing });
    const next = stateAfter(result, attempt, deps.retryScale);
    const { state, retryInMs } = next;
    deps.metrics?.webhookDeliveries.inc({ outcome: state });
    deps.metrics?.webhookDuration.observe({ outcome: state }, result.durationMs / 1000);
    const settling = deps.batcher.settle({
      tenant: delivery.tenant,
      subject: delivery.subject,
      deliveryId: delivery.id,
      outcome: { run: delivery.run, state, status: result.status, error: result.error, durationMs: result.durationMs, retryInMs },
      host,
      member,
      health: healthOf(result),
      ...(first ? { entryId: first.entryId } : {}),
    });
    // after the settle is queued, so it goes in the same call as the next attempt's slot, or an earlier one
    first?.onSent(next);
    const settled = await settling;
    released = true;
    afterRelease(deps, host, settled);
    return {
      state,
      recorded: settled.recorded,
      entrySettled: settled.entrySettled,
      ...(retryInMs !== undefined ? { retryInMs } : {}),
      ...(result.status !== undefined ? { status: result.status } : {}),
      ...(result.error ? { error: result.error } : {}),
    };
  } finally {
    if (!released) await (sent ? releaseSlot(deps, host, member, 'unknown') : abandonAttempt(deps, delivery, host, member)).catch(() => undefined);
  }
}
