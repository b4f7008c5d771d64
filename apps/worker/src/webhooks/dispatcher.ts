import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  attemptsInRun,
  deliveryIdFor,
  hashOf,
  redisNotServing,
  OUTBOX_GROUP,
  OUTBOX_KEEP_HELD_LUA,
  parseOutboxEntry,
  webhookBody,
  webhookIdFor,
  webhookJobOptions,
  WEBHOOK_JOBS,
  WEBHOOK_MAX_ATTEMPTS,
  type Delivery,
  type DeliverWebhookJobInput,
  type DeliveryLog,
  type Keys,
  type Logger,
} from '@imagegen/shared';
import { abandonAttempt, attemptDelivery, type AttemptDeps } from './attempt';
import { LetGo, SLOW_ATTEMPT_MS, SLOW_PER_PLACE } from './let-go';
import { nextRefusalWaitMs } from '../write-refusals';

export interface DispatcherOptions {
  /** This process's consumer name in the group; unique per process. */
  consumer: string;
  /** Entries read by a consumer and not acknowledged for this long are taken over. */
  claimIdleMs: number;
  startDelayMs: number;
  /** Where the file URLs in webhook bodies start (read for each batch of entries: it may be learnt late). */
  filesBaseUrl: () => string;
  batchSize?: number;
  blockMs?: number;
  /** First-attempt requests made by the dispatcher itself at once (WEBHOOK_CONCURRENCY); 0 leaves every attempt to jobs. */
  inlineConcurrency: number;
}

interface Dispatched {
  entryId: string;
  delivery: Delivery;
  body: string;
  host: string;
}

type StreamEntry = [id: string, fields: string[] | null];

/** Consumers gone (no pending entries) for this long are removed from the group. */
const IDLE_CONSUMER_MS = 3600_000;
/** A running dispatcher's presence key lives this long, renewed five times as often. */
const ALIVE_MS = 10_000;
/** How often a dispatcher looks for entries of dispatchers that stopped. */
const TAKEOVER_EVERY_MS = 2_000;
/**
 * Entries of a stopped dispatcher are claimed only once idle this long: a claim resets the idle
 * time, so two dispatchers taking over at once cannot both claim the same entry.
 */
const TAKEOVER_MIN_IDLE_MS = 1_000;

/**
 * Turns outbox entries into deliveries. Reads the outbox stream with a consumer group (several
 * workers share the work), and takes over entries left pending by a worker that died: at once
 * when its presence key (renewed while it runs) has expired, else once they have been idle for
 * claimIdleMs (longer than any attempt). For each
 * entry: freeze the body and write the delivery to the log, then make its first attempt at once
 * (holding a slot of the endpoint's host, as every attempt does), and the schedule's immediate
 * first retry; only a delivery that needs a later attempt, or whose host is busy or failing,
 * becomes a job on the webhooks queue (job
 * id = delivery id, both derived from the entry id). The entry is acknowledged and deleted once
 * its delivery is settled or enqueued. Every step is idempotent: an entry handled again after a
 * crash finds its delivery in the log and hands it to a job, which sends only what is not done.
 *
 * Redis work is done per batch, not per delivery: the deliveries of one read are logged by one
 * script call, and in each turn of the event loop one call records, releases and acknowledges
 * the attempts that ended and takes the host slots of those that start (AttemptBatcher). The
 * next read is made while a round of attempts still waits, so requests follow each other
 * without a gap for reading.
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
    /** What a first attempt needs (null: every attempt is a job's). */
    private readonly attempts: AttemptDeps | null = null,
  ) {
    this.slow = new LetGo(opts.inlineConcurrency * SLOW_PER_PLACE);
  }

  /** First attempts under way, each settling (and acknowledging) one entry. */
  private readonly inFlight = new Set<Promise<void>>();
  /** First attempts whose request is under way and holds a place: inlineConcurrency bounds these. */
  private sending = 0;
  /** First attempts slow enough to have given their place back, still waiting for an answer: at most SLOW_PER_PLACE per place. */
  private readonly slow: LetGo;
  /**
   * Deliveries made and logged, their first attempt waiting for a free place: the next read
   * is made while some still wait, so requests go on back to back.
   */
  private readonly waiting: { stream: string; d: Dispatched }[] = [];
  /** Wakes the dispatch loop when a place frees. */
  private placeFreed: () => void = () => undefined;
  /** Renews this dispatcher's presence key while it runs. */
  private presence?: NodeJS.Timeout;
  /**
   * Entries this dispatcher works on (their first attempt waiting for a place or its subject's
   * turn, or under way): kept from looking idle (keepHeld), since one can be held longer than
   * claimIdleMs (an attempt and its immediate retry to a hanging endpoint, after those of the
   * subject's event before it), and a claim would then make the same attempt again at once.
   */
  private readonly held = new Set<string>();
  private keeping?: NodeJS.Timeout;
  /**
   * Subjects (generations, batches) with a first attempt whose request is under way here: the
   * next event of the same subject is not started before it is answered, so a receiver gets a
   * subject's events in order (started before completed) even when one read holds both. Events
   * of other subjects pass it.
   */
  private readonly subjectsSending = new Set<string>();

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
    // first attempts under way, and those waiting for a place, finish (each is bounded by the request timeout)
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
    clearInterval(this.presence);
    clearInterval(this.keeping);
    // whatever is still pending here is taken over by another dispatcher at once
    await this.redis.del(this.keys.webhookDispatcherAlive(this.opts.consumer)).catch(() => undefined);
  }

  private async keepPresent(): Promise<void> {
    const key = this.keys.webhookDispatcherAlive(this.opts.consumer);
    const renew = () => this.redis.set(key, '1', 'PX', ALIVE_MS);
    this.presence ??= setInterval(() => void renew().catch(() => undefined), ALIVE_MS / 5).unref();
    this.keeping ??= setInterval(() => void this.keepHeld().catch(() => undefined), Math.max(50, this.opts.claimIdleMs / 3)).unref();
    await renew();
  }

  /** Resets the idle time of the entries held here that are still this dispatcher's (see held). */
  private async keepHeld(): Promise<void> {
    const ids = [...this.held];
    for (let i = 0; i < ids.length; i += 500) {
      await this.redis.eval(OUTBOX_KEEP_HELD_LUA, 1, this.keys.webhookOutbox(), OUTBOX_GROUP, this.opts.consumer, ...ids.slice(i, i + 500));
    }
  }

  private async run(): Promise<void> {
    if (this.opts.startDelayMs > 0) await this.pause(this.opts.startDelayMs);
    const stream = this.keys.webhookOutbox();
    let groupReady = false;
    let lastClaim = 0;
    let lastTakeover = 0;
    let refusedWaitMs = 0;
    while (!this.stopped) {
      try {
        if (!groupReady) {
          // present before it reads anything, so nothing it reads is taken over while it runs
          await this.keepPresent();
          await this.redis.xgroup('CREATE', stream, OUTBOX_GROUP, '0', 'MKSTREAM').catch((err: Error) => {
            if (!/BUSYGROUP/.test(err.message)) throw err;
          });
          groupReady = true;
        }
        if (Date.now() - lastTakeover >= TAKEOVER_EVERY_MS) {
          lastTakeover = Date.now();
          await this.takeOverStopped(stream);
        }
        if (Date.now() - lastClaim >= this.opts.claimIdleMs / 2) {
          lastClaim = Date.now();
          await this.claimAbandoned(stream);
        }
        const res = (await this.reader.xreadgroup(
          'GROUP',
          OUTBOX_GROUP,
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
        refusedWaitMs = 0;
      } catch (err) {
        if (this.stopped) break;
        if (/NOGROUP/.test((err as Error).message)) groupReady = false;
        // while Redis refuses writes the pause doubles, up to the longest wait, rather than a failure a second
        refusedWaitMs = redisNotServing(err) === undefined ? 0 : nextRefusalWaitMs(refusedWaitMs);
        this.logger.warn('webhook dispatch failed; retrying', { error: (err as Error).message, retryInMs: refusedWaitMs || 1000 });
        // what this consumer read stays pending and is taken over once idle, by it or another
        await this.pause(refusedWaitMs || 1000);
      }
    }
  }

  /**
   * Entries pending on dispatchers that stopped: no presence key, and no read for longer than the
   * key lives (a running dispatcher reads at least every second or so; the second condition keeps
   * a running one whose key was lost, say by a Redis failover, from being robbed).
   */
  private async takeOverStopped(stream: string): Promise<void> {
    const quiet = (await this.consumers(stream)).filter(({ name, pending, idle }) => name !== this.opts.consumer && pending > 0 && idle >= ALIVE_MS);
    if (quiet.length === 0) return;
    const alive = await this.redis.mget(...quiet.map(({ name }) => this.keys.webhookDispatcherAlive(name)));
    for (const [i, { name }] of quiet.entries()) {
      if (alive[i] !== null) continue;
      for (let page = 0; page < 50; page++) {
        const ids = (await this.redis.xpending(stream, OUTBOX_GROUP, '-', '+', this.opts.batchSize ?? 200, name)) as [string, string, number, number][];
        if (ids.length === 0) break;
        // entries deleted meanwhile come back as nil before Redis 7 (and not at all since)
        const entries = ((await this.redis.xclaim(stream, OUTBOX_GROUP, this.opts.consumer, TAKEOVER_MIN_IDLE_MS, ...ids.map(([id]) => id))) as (StreamEntry | null)[]).filter((e): e is StreamEntry => e !== null);
        if (entries.length === 0) break;
        this.logger.info('took over webhook events of a stopped dispatcher', { from: name, count: entries.length });
        await this.dispatch(stream, entries);
      }
    }
  }

  /** The group's consumers: name, entries pending, ms since their last read. */
  private async consumers(stream: string): Promise<{ name: string; pending: number; idle: number }[]> {
    const raw = (await this.redis.xinfo('CONSUMERS', stream, OUTBOX_GROUP)) as unknown[][];
    return raw.map((fields) => {
      const info = hashOf(fields as string[]);
      return { name: String(info.name), pending: Number(info.pending), idle: Number(info.idle) };
    });
  }

  /** Entries pending for claimIdleMs on any other dispatcher (one that stopped without its presence key expiring yet, or is stuck). */
  private async claimAbandoned(stream: string): Promise<void> {
    let start = '0-0';
    for (let page = 0; page < 50; page++) {
      const [next, entries] = (await this.redis.xautoclaim(stream, OUTBOX_GROUP, this.opts.consumer, this.opts.claimIdleMs, start, 'COUNT', this.opts.batchSize ?? 200)) as [
        string,
        StreamEntry[],
        string[]?,
      ];
      // its own entries come back too when they have been held too long (keepHeld failing): they are under way here
      const abandoned = entries.filter(([id]) => !this.held.has(id));
      if (abandoned.length) {
        this.logger.info('took over webhook events left pending too long', { count: abandoned.length });
        await this.dispatch(stream, abandoned);
      }
      if (next === '0-0') break;
      start = next;
    }
    await this.forgetIdleConsumers(stream);
  }

  private async forgetIdleConsumers(stream: string): Promise<void> {
    for (const { name, pending, idle } of await this.consumers(stream)) {
      if (name !== this.opts.consumer && pending === 0 && idle > IDLE_CONSUMER_MS) await this.redis.xgroup('DELCONSUMER', stream, OUTBOX_GROUP, name);
    }
  }

  private async dispatch(stream: string, entries: StreamEntry[]): Promise<void> {
    const made: Dispatched[] = [];
    const settled: string[] = [];
    const links = { filesBaseUrl: this.opts.filesBaseUrl() };
    for (const [entryId, fields] of entries) {
      // an entry deleted while pending comes back without fields: nothing left to do
      if (!fields) {
        settled.push(entryId);
        continue;
      }
      const event = parseOutboxEntry(entryId, fields, links);
      if ('invalid' in event) {
        this.logger.warn('dropping an undeliverable webhook event', { entryId, reason: event.invalid });
        settled.push(entryId);
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
      made.push({ entryId, delivery, body: webhookBody(event.event, event.at, event.data), host: event.host });
    }
    const created = await this.log.createMany(made);
    const inline = this.attempts !== null && this.opts.inlineConcurrency > 0;
    const toSend: Dispatched[] = [];
    const jobs: Promise<{ d: Dispatched; attemptsBefore: number; delayMs: number }>[] = [];
    for (const [i, d] of made.entries()) {
      if (created[i] && inline) toSend.push(d);
      // dispatched before by a process that died: a job finishes whatever it left, from the attempts logged
      else jobs.push((async () => ({ d, attemptsBefore: created[i] ? 0 : await this.attemptsLogged(d), delayMs: 0 }))());
    }
    const toJobs = await Promise.all(jobs);
    if (toJobs.length) await this.enqueue(toJobs);
    await this.acknowledge(stream, [...settled, ...toJobs.map(({ d }) => d.entryId)]);
    for (const d of toSend) {
      this.held.add(d.entryId);
      this.waiting.push({ stream, d });
    }
    this.startAttempts();
    // the next read once no more than one round of attempts waits (bounds what is held here)
    while (this.waiting.length > this.opts.inlineConcurrency) await new Promise<void>((resolve) => (this.placeFreed = resolve));
  }

  /** Attempts the log has of a delivery whose dispatcher died: its job goes on with the schedule from there. */
  private async attemptsLogged(d: Dispatched): Promise<number> {
    const found = await this.log.load(d.delivery.subject, d.delivery.id);
    // a redelivery's run has its own job and schedule
    if (!found || found.delivery.run !== 0) return 0;
    // the run's count, not the log's: attempts cut short on our side use no step of the schedule
    // (a delivery logged before runs were counted has only the log's)
    const { delivery } = found;
    return Math.min(delivery.runAttemptsOf === undefined ? delivery.attempts : attemptsInRun(delivery), WEBHOOK_MAX_ATTEMPTS - 1);
  }

  private startAttempts(): void {
    for (let i = 0; i < this.waiting.length && this.sending < this.opts.inlineConcurrency; ) {
      const { stream, d } = this.waiting[i] as { stream: string; d: Dispatched };
      if (this.subjectsSending.has(d.delivery.subject)) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      this.subjectsSending.add(d.delivery.subject);
      this.sending++;
      let placeHeld = true;
      let isSlow = false;
      const givePlace = () => {
        if (!placeHeld) return;
        placeHeld = false;
        this.sending--;
        this.startAttempts();
        this.placeFreed();
      };
      // the subject's next event waits for an answer, not for a place: a slow attempt still holds its subject
      let subjectHeld = true;
      const answered = () => {
        if (subjectHeld) {
          subjectHeld = false;
          this.subjectsSending.delete(d.delivery.subject);
          // a slow attempt gave its place back already: the subject's next event waits on nothing else now
          if (!placeHeld) {
            this.startAttempts();
            this.placeFreed();
          }
        }
        givePlace();
      };
      // endpoints that hang would otherwise hold every place until they time out (see SLOW_ATTEMPT_MS)
      const slowTimer = setTimeout(() => {
        if (!placeHeld || !this.slow.take()) return;
        isSlow = true;
        givePlace();
      }, SLOW_ATTEMPT_MS);
      const attempt = this.firstAttempt(stream, d, answered).finally(() => {
        this.held.delete(d.entryId);
        clearTimeout(slowTimer);
        if (isSlow) this.slow.giveBack();
        answered();
        this.inFlight.delete(attempt);
      });
      this.inFlight.add(attempt);
    }
  }

  /** The first attempt of a new delivery, then its entry is acknowledged; a failure leaves the entry pending, for a takeover. */
  private async firstAttempt(stream: string, d: Dispatched, onSent: () => void): Promise<void> {
    const deps = this.attempts as AttemptDeps;
    try {
      // the schedule's first retry is immediate: made here, at once, rather than through the queue
      // (not while stopping: a job makes it, so shutdown waits for one request, not two)
      const retriesNow = (attempt: number, next: { state: string; retryInMs?: number }) => attempt === 1 && next.state === 'pending' && next.retryInMs === 0 && !this.stopped;
      for (let attempt = 1; ; attempt++) {
        // one attempt's own: its record, made again, is not recorded twice
        const member = `${d.delivery.id}:${this.opts.consumer}:${attempt}`;
        const slot = await deps.batcher.acquire({ host: d.host, member, jobId: d.delivery.id, starts: { subject: d.delivery.subject, run: 0 } }).catch(async (err: Error) => {
          // the call may have run (its reply lost): nothing was sent
          await abandonAttempt(deps, d.delivery, d.host, member).catch(() => undefined);
          throw err;
        });
        if (slot.kind !== 'ok') {
          // the host is at its bound, or failing: the job waits for it without holding anything here
          await this.enqueue([{ d, attemptsBefore: attempt - 1, delayMs: 0 }]);
          await this.acknowledge(stream, [d.entryId]);
          return;
        }
        // a final outcome settles the entry with the attempt; one with another attempt to come is handed to a job first
        const outcome = await attemptDelivery(deps, d, d.host, member, attempt, {
          entryId: d.entryId,
          // a retry made here keeps its place and its subject's turn
          onSent: (next) => {
            if (!retriesNow(attempt, next)) onSent();
          },
        });
        if (outcome.entrySettled) return;
        if (outcome.recorded === 'ok' && outcome.state === 'pending') {
          if (retriesNow(attempt, outcome)) continue;
          await this.enqueue([{ d, attemptsBefore: attempt, delayMs: outcome.retryInMs ?? 0 }]);
        }
        await this.acknowledge(stream, [d.entryId]);
        return;
      }
    } catch (err) {
      this.logger.warn('first webhook attempt failed to settle; the event stays in the outbox', { deliveryId: d.delivery.id, error: (err as Error).message });
    }
  }

  private async enqueue(items: { d: Dispatched; attemptsBefore: number; delayMs: number }[]): Promise<void> {
    await this.queue.addBulk(
      items.map(({ d, attemptsBefore, delayMs }) => ({
        name: WEBHOOK_JOBS.deliver.name,
        data: { deliveryId: d.delivery.id, subject: d.delivery.subject, tenant: d.delivery.tenant, host: d.host, run: 0, attemptsBefore } satisfies DeliverWebhookJobInput,
        opts: webhookJobOptions(d.delivery.id, 0, attemptsBefore, delayMs),
      })),
    );
  }

  /** Entries settled since the last flush, acknowledged and deleted together once per turn of the event loop. */
  private acks: { ids: string[]; done: Promise<void> } | null = null;

  private acknowledge(stream: string, entryIds: string[]): Promise<void> {
    if (entryIds.length === 0) return Promise.resolve();
    if (!this.acks) {
      const ids: string[] = [];
      const done = new Promise<void>((resolve, reject) =>
        setImmediate(() => {
          this.acks = null;
          this.redis
            .multi()
            .xack(stream, OUTBOX_GROUP, ...ids)
            .xdel(stream, ...ids)
            .exec()
            .then((results) => {
              const failed = results?.find(([err]) => err);
              if (failed) reject(failed[0]);
              else resolve();
            }, reject);
        }),
      );
      this.acks = { ids, done };
    }
    this.acks.ids.push(...entryIds);
    return this.acks.done;
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
