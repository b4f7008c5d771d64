import type { GenerationStore } from '../records/generation-store';
import { isTerminal, type GenerationRecord } from '../schemas/generation';
import type { EventHub } from './event-hub';
import { parseGenerationEvent, sleepUntilWoken, type TerminalWatch } from './wait';

type Waiter = (record: GenerationRecord | null) => void;

/**
 * One channel per API process, subscribed once: a generation created by a request that waits on
 * it names this channel in its record (`notify`), and its end is published there too, carrying
 * the record. A waiting request then costs no subscribe, no unsubscribe and no read. A process
 * whose channel is not subscribed yet (starting) waits the per-generation way (`watchGeneration`).
 */
export class WaiterChannel {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private ready = false;

  constructor(
    private readonly hub: EventHub,
    private readonly store: GenerationStore,
    readonly channel: string,
  ) {}

  /** Subscribes the channel; until it is confirmed, `isReady` is false. */
  async start(): Promise<void> {
    await this.hub.subscribe(this.channel, (message) => this.onMessage(message));
    this.ready = true;
  }

  get isReady(): boolean {
    return this.ready;
  }

  /** Generations waited on now. */
  get size(): number {
    return this.waiters.size;
  }

  private onMessage(message: string | null): void {
    if (message === null) {
      // reconnected: an end may have been published while we were away; every waiter re-reads
      // (a record not there yet is one still being created: its wait goes on)
      for (const id of this.waiters.keys()) {
        void this.store.get(id).then(
          // whoever waits on it when the record is read (waiters leave meanwhile)
          (r) => r && isTerminal(r.status) && this.waiters.get(id)?.forEach((w) => w(r)),
          () => undefined,
        );
      }
      return;
    }
    const event = parseGenerationEvent(message);
    const set = event?.id ? this.waiters.get(event.id) : undefined;
    if (!set) return;
    const record = event?.record ?? null;
    for (const w of set) w(record);
  }

  /**
   * Watches generation `id`, which must be created after this call with `notify` set to this
   * channel. `untilTerminal` needs the record as created; `close` forgets the waiter.
   */
  watch(id: string): TerminalWatch {
    let ended: GenerationRecord | null | undefined;
    let wake: () => void = () => undefined;
    const waiter: Waiter = (record) => {
      ended = record;
      wake();
    };
    let set = this.waiters.get(id);
    if (!set) {
      set = new Set();
      this.waiters.set(id, set);
    }
    set.add(waiter);
    const close = async () => {
      const s = this.waiters.get(id);
      s?.delete(waiter);
      if (s && s.size === 0) this.waiters.delete(id);
    };
    return {
      untilTerminal: async (timeoutMs, signal, created) => {
        const first = created ?? (await this.store.get(id));
        if (!first || isTerminal(first.status) || timeoutMs <= 0 || signal?.aborted) return first;
        if (ended === undefined) await sleepUntilWoken((w) => (wake = w), timeoutMs, signal);
        if (ended) return ended;
        // an accepted generation is never turned into an error by a read that fails now
        return this.store.get(id).catch(() => first);
      },
      close,
    };
  }
}
