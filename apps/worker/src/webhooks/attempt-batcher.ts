import DataLoader from 'dataloader';
import type { Redis } from 'ioredis';
import { isRecoverable, SETTLE_AND_ACQUIRE_LUA, type AttemptOutcome, type DeliveryLog, type Keys } from '@imagegen/shared';
import type { HostHealth, HostLimiter, HostSlot } from './host-limiter';

/** One attempt whose request is done, to be recorded and whose host slot is to be given back. */
export interface AttemptToSettle {
  tenant: string;
  subject: string;
  deliveryId: string;
  outcome: AttemptOutcome;
  host: string;
  member: string;
  health: HostHealth;
  /** The outbox entry of a dispatcher's first attempt: settled with it unless another attempt follows. */
  entryId?: string;
}

/** One attempt about to start, to take a slot of its host (parked as `jobId` if every slot is taken). */
export interface SlotRequest {
  host: string;
  member: string;
  jobId: string;
  /** Given, the attempt is marked started in its delivery's log once it has its slot (the delivery's id is then `jobId`). */
  starts?: { subject: string; run: number };
}

export interface Settled {
  recorded: 'ok' | 'missing' | 'stale';
  /** This release opened the host's circuit. */
  opened: boolean;
  /** A parked delivery the freed slot goes to. */
  wake?: string;
  /** The outbox entry was acknowledged and deleted. */
  entrySettled: boolean;
}

type Step = { settle: AttemptToSettle } | { acquire: SlotRequest };

/** The batch script's command name on a connection. */
export const ATTEMPT_BATCH_COMMAND = 'imagegenSettleAndAcquire';

type BatchRedis = Redis & { imagegenSettleAndAcquire(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<(string | number)[]> };

/** Most steps in one script call. */
const MAX_BATCH = 400;

/**
 * The Redis steps around attempts, batched: every attempt that ends in one turn of the event loop
 * is recorded, released and (for first attempts) acknowledged, and every attempt that starts in
 * that turn takes its host slot, all in one script call (SETTLE_AND_ACQUIRE_LUA). The attempts
 * that end go first, so a slot freed in a turn is there for an attempt starting in the same turn,
 * whichever was asked for first.
 */
export class AttemptBatcher {
  private readonly redis: BatchRedis;
  private readonly loader: DataLoader<Step, Settled | HostSlot>;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly log: DeliveryLog,
    private readonly limiter: HostLimiter,
    /** The outbox's consumer group. */
    private readonly group: string,
  ) {
    if (!(ATTEMPT_BATCH_COMMAND in redis)) redis.defineCommand(ATTEMPT_BATCH_COMMAND, { lua: SETTLE_AND_ACQUIRE_LUA });
    this.redis = redis as BatchRedis;
    this.loader = new DataLoader((steps) => this.run(steps), { cache: false, maxBatchSize: MAX_BATCH, batchScheduleFn: (run) => setImmediate(run) });
  }

  settle(attempt: AttemptToSettle): Promise<Settled> {
    return this.loader.load({ settle: attempt }) as Promise<Settled>;
  }

  acquire(request: SlotRequest): Promise<HostSlot> {
    return this.loader.load({ acquire: request }) as Promise<HostSlot>;
  }

  private async run(steps: readonly Step[]): Promise<(Settled | HostSlot)[]> {
    const ending: AttemptToSettle[] = [];
    const starting: SlotRequest[] = [];
    for (const step of steps) {
      if ('settle' in step) ending.push(step.settle);
      else starting.push(step.acquire);
    }
    const { circuitFailures, circuitOpenMs, leaseMs, maxInFlight } = this.limiter.opts;
    // each host's keys, each tenant's index of ended deliveries and each log of an attempt that starts, once, named by number in
    // the steps: a batch mostly goes to few; a tenant's index is named only by attempts that end failed or exhausted (the others pass 0)
    const hosts = numbered((host) => this.limiter.releaseKeys(host));
    const tenants = numbered((tenant) => [this.log.endedKeyOf(tenant)]);
    const startLogs = numbered((subject) => [this.log.keyOf(subject)]);
    const logKeys: string[] = [];
    const ownerKeys: string[] = [];
    const stepArgs: (string | number)[] = [];
    for (const a of ending) {
      logKeys.push(this.log.keyOf(a.subject));
      ownerKeys.push(this.log.ownerKeyOf(a.subject));
      stepArgs.push(hosts.of(a.host), isRecoverable(a.outcome.state) ? tenants.of(a.tenant) : 0, ...this.log.attemptFields(a.subject, a.deliveryId, a.outcome), a.member, a.health, a.entryId ?? '');
    }
    for (const r of starting) stepArgs.push(hosts.of(r.host), r.member, r.jobId, r.starts ? startLogs.of(r.starts.subject) : 0, r.starts?.run ?? 0);
    const keys = [this.keys.webhookOutbox(), ...hosts.keys, ...logKeys, ...ownerKeys, ...tenants.keys, ...startLogs.keys];
    const args = [this.group, this.log.retentionSeconds, this.log.kept, circuitFailures, circuitOpenMs, leaseMs, maxInFlight, ending.length, hosts.count(), tenants.count(), ...stepArgs];
    const flat = await this.redis.imagegenSettleAndAcquire(keys.length, ...keys, ...args);
    let settledAt = 0;
    let slotAt = 4 * ending.length;
    return steps.map((step) => {
      if ('settle' in step) {
        const [recorded, opened, wake, settled] = flat.slice(settledAt, (settledAt += 4));
        return { recorded: recorded as Settled['recorded'], opened: Number(opened) === 1, ...(wake ? { wake: String(wake) } : {}), entrySettled: Number(settled) === 1 };
      }
      const [kind, ms] = flat.slice(slotAt, (slotAt += 2));
      return this.limiter.slotOf(String(kind), ms);
    });
  }
}

/** Numbers names from 1 as they are first met, gathering each one's keys once. */
function numbered(keysOf: (name: string) => string[]) {
  const numbers = new Map<string, number>();
  const keys: string[] = [];
  return {
    keys,
    count: () => numbers.size,
    of(name: string): number {
      let n = numbers.get(name);
      if (n === undefined) {
        numbers.set(name, (n = numbers.size + 1));
        keys.push(...keysOf(name));
      }
      return n;
    },
  };
}
