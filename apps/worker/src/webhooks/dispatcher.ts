import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  deliveryIdFor,
  parseOutboxEntry,
  webhookBody,
  webhookIdFor,
  webhookJobOptions,
  WEBHOOK_JOBS,
  type Delivery,
  type DeliveryLog,
  type Keys,
  type Logger,
} from '@imagegen/shared';

export const DISPATCH_GROUP = 'dispatchers';

export interface DispatcherOptions {
  /** This process's consumer name in the group; unique per process. */
  consumer: string;
  /** Entries read by a consumer and not acknowledged for this long are taken over. */
  claimIdleMs: number;
  startDelayMs: number;
  publicBaseUrl: string;
  batchSize?: number;
  blockMs?: number;
}

type StreamEntry = [id: string, fields: string[] | null];

/** Consumers gone (no pending entries) for this long are removed from the group. */
const IDLE_CONSUMER_MS = 3600_000;

/**
 * Turns outbox entries into deliveries. Reads the outbox stream with a consumer group (several
 * workers share the work), and takes over entries left pending by a worker that died. For each
 * entry: freeze the body, write the delivery to the log, enqueue its job (job id = delivery id,
 * both derived from the entry id), then acknowledge and delete the entry. Every step is
 * idempotent, so an entry handled twice after a crash still makes one delivery.
 */
export class OutboxDispatcher {
  private stopped = false;
  private loop?: Promise<void>;
  private wake: () => void = () => undefined;

  constructor(
    /** Dedicated connection: XREADGROUP blocks it. */
    private readonly reader: Redis,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly queue: Queue,
    private readonly log: DeliveryLog,
    private readonly logger: Logger,
    private readonly opts: DispatcherOptions,
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Lets a read in progress finish and be dispatched; a read that cannot finish (Redis away) is cut. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    const grace = new Promise<void>((resolve) => setTimeout(resolve, (this.opts.blockMs ?? 1000) + 1000).unref());
    await Promise.race([this.loop, grace]);
    // what it had read stays pending in the group, for another worker to take over
    this.reader.disconnect();
    await this.loop;
  }

  private async run(): Promise<void> {
    if (this.opts.startDelayMs > 0) await this.pause(this.opts.startDelayMs);
    const stream = this.keys.webhookOutbox();
    let groupReady = false;
    let lastClaim = 0;
    while (!this.stopped) {
      try {
        if (!groupReady) {
          await this.redis.xgroup('CREATE', stream, DISPATCH_GROUP, '0', 'MKSTREAM').catch((err: Error) => {
            if (!/BUSYGROUP/.test(err.message)) throw err;
          });
          groupReady = true;
        }
        if (Date.now() - lastClaim >= this.opts.claimIdleMs / 2) {
          lastClaim = Date.now();
          await this.claimAbandoned(stream);
        }
        const res = (await this.reader.xreadgroup(
          'GROUP',
          DISPATCH_GROUP,
          this.opts.consumer,
          'COUNT',
          this.opts.batchSize ?? 200,
          'BLOCK',
          this.opts.blockMs ?? 1000,
          'STREAMS',
          stream,
          '>',
        )) as [string, StreamEntry[]][] | null;
        const entries = res?.[0]?.[1] ?? [];
        if (entries.length) await this.dispatch(stream, entries);
      } catch (err) {
        if (this.stopped) break;
        if (/NOGROUP/.test((err as Error).message)) groupReady = false;
        this.logger.warn('webhook dispatch failed; retrying', { error: (err as Error).message });
        // what this consumer read stays pending and is taken over once idle, by it or another
        await this.pause(1000);
      }
    }
  }

  /** Entries pending on consumers that stopped (crashed) before acknowledging them. */
  private async claimAbandoned(stream: string): Promise<void> {
    let start = '0-0';
    for (let page = 0; page < 50; page++) {
      const [next, entries] = (await this.redis.xautoclaim(stream, DISPATCH_GROUP, this.opts.consumer, this.opts.claimIdleMs, start, 'COUNT', this.opts.batchSize ?? 200)) as [
        string,
        StreamEntry[],
        string[]?,
      ];
      if (entries.length) {
        this.logger.info('took over webhook events of a stopped dispatcher', { count: entries.length });
        await this.dispatch(stream, entries);
      }
      if (next === '0-0') break;
      start = next;
    }
    await this.forgetIdleConsumers(stream);
  }

  private async forgetIdleConsumers(stream: string): Promise<void> {
    const consumers = (await this.redis.xinfo('CONSUMERS', stream, DISPATCH_GROUP)) as unknown[][];
    for (const raw of consumers) {
      const info: Record<string, unknown> = {};
      for (let i = 0; i + 1 < raw.length; i += 2) info[String(raw[i])] = raw[i + 1];
      if (info.name !== this.opts.consumer && Number(info.pending) === 0 && Number(info.idle) > IDLE_CONSUMER_MS) {
        await this.redis.xgroup('DELCONSUMER', stream, DISPATCH_GROUP, String(info.name));
      }
    }
  }

  private async dispatch(stream: string, entries: StreamEntry[]): Promise<void> {
    const made: { delivery: Delivery; body: string; host: string }[] = [];
    const done: string[] = [];
    for (const [entryId, fields] of entries) {
      done.push(entryId);
      // an entry deleted while pending comes back without fields: nothing left to do
      if (!fields) continue;
      const event = parseOutboxEntry(entryId, fields, this.opts.publicBaseUrl);
      if ('invalid' in event) {
        this.logger.warn('dropping an undeliverable webhook event', { entryId, reason: event.invalid });
        continue;
      }
      const id = deliveryIdFor(entryId);
      const delivery: Delivery = {
        id,
        event: event.event,
        webhookId: webhookIdFor(id),
        url: event.target.url,
        tenant: event.tenant,
        subject: event.subject,
        createdAt: event.at,
        state: 'pending',
        run: 0,
        attempts: 0,
      };
      made.push({ delivery, body: webhookBody(event.event, event.at, event.data), host: new URL(event.target.url).host });
    }
    await this.log.createMany(made);
    if (made.length) {
      await this.queue.addBulk(
        made.map(({ delivery, host }) => ({
          name: WEBHOOK_JOBS.deliver.name,
          data: { deliveryId: delivery.id, subject: delivery.subject, tenant: delivery.tenant, host, run: 0 },
          opts: webhookJobOptions(delivery.id, 0),
        })),
      );
    }
    const results = await this.redis
      .multi()
      .xack(stream, DISPATCH_GROUP, ...done)
      .xdel(stream, ...done)
      .exec();
    for (const [err] of results ?? []) if (err) throw err;
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
