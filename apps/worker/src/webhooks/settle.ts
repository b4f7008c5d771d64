import DataLoader from 'dataloader';
import type { Redis } from 'ioredis';
import { SETTLE_ATTEMPTS_LUA, type AttemptOutcome, type DeliveryLog, type Keys } from '@imagegen/shared';
import type { HostHealth, HostLimiter } from './host-limiter';

/** One attempt whose request is done, to be recorded and whose host slot is to be given back. */
export interface AttemptToSettle {
  subject: string;
  deliveryId: string;
  outcome: AttemptOutcome;
  host: string;
  member: string;
  health: HostHealth;
  /** The outbox entry of a dispatcher's first attempt: settled with it unless another attempt follows. */
  entryId?: string;
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

/** The settle script's command name on a connection. */
export const SETTLE_COMMAND = 'imagegenSettleAttempts';

type SettleRedis = Redis & { imagegenSettleAttempts(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<(string | number)[]> };

/** Most attempts settled by one script call. */
const MAX_BATCH = 200;

/**
 * Settles attempts in batches: every attempt that ends in the same turn of the event loop is
 * recorded, released and (for first attempts) acknowledged by one script call, each attempt
 * atomically (see SETTLE_ATTEMPTS_LUA).
 */
export class AttemptSettler {
  private readonly redis: SettleRedis;
  private readonly loader: DataLoader<AttemptToSettle, Settled>;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly log: DeliveryLog,
    private readonly limiter: HostLimiter,
    /** The outbox's consumer group. */
    private readonly group: string,
  ) {
    if (!(SETTLE_COMMAND in redis)) redis.defineCommand(SETTLE_COMMAND, { lua: SETTLE_ATTEMPTS_LUA });
    this.redis = redis as SettleRedis;
    this.loader = new DataLoader((batch) => this.settleMany(batch), { cache: false, maxBatchSize: MAX_BATCH, batchScheduleFn: (run) => setImmediate(run) });
  }

  settle(attempt: AttemptToSettle): Promise<Settled> {
    return this.loader.load(attempt);
  }

  private async settleMany(batch: readonly AttemptToSettle[]): Promise<Settled[]> {
    const { circuitFailures, circuitOpenMs } = this.limiter.opts;
    const keys: string[] = [this.keys.webhookOutbox()];
    const args: (string | number)[] = [this.group, this.log.retentionSeconds, this.log.kept, circuitFailures, circuitOpenMs];
    for (const a of batch) {
      keys.push(this.log.keyOf(a.subject), ...this.limiter.releaseKeys(a.host));
      args.push(...this.log.attemptFields(a.deliveryId, a.outcome), a.member, a.health, a.entryId ?? '');
    }
    const flat = await this.redis.imagegenSettleAttempts(keys.length, ...keys, ...args);
    return batch.map((_, i) => {
      const [recorded, opened, wake, settled] = flat.slice(4 * i, 4 * i + 4);
      return { recorded: recorded as Settled['recorded'], opened: Number(opened) === 1, ...(wake ? { wake: String(wake) } : {}), entrySettled: Number(settled) === 1 };
    });
  }
}
