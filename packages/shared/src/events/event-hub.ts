import type { Redis } from 'ioredis';

type Listener = (message: string) => void;

/**
 * One subscriber connection shared by every waiter in the process. Channels are
 * reference-counted: the first listener subscribes, the last one unsubscribes.
 */
export class EventHub {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly pending = new Map<string, Promise<unknown>>();

  constructor(private readonly sub: Redis) {
    sub.on('message', (channel: string, message: string) => {
      for (const l of this.listeners.get(channel) ?? []) l(message);
    });
  }

  /** Resolves once Redis confirmed the subscription, so nothing published after it is missed. */
  async subscribe(channel: string, listener: Listener): Promise<() => Promise<void>> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      this.pending.set(channel, this.sub.subscribe(channel));
    }
    set.add(listener);
    try {
      await this.pending.get(channel);
    } catch (err) {
      await this.release(channel, listener);
      throw err;
    }
    return () => this.release(channel, listener);
  }

  private async release(channel: string, listener: Listener): Promise<void> {
    const set = this.listeners.get(channel);
    if (!set) return;
    set.delete(listener);
    if (set.size > 0) return;
    this.listeners.delete(channel);
    this.pending.delete(channel);
    if (this.sub.status === 'ready') await this.sub.unsubscribe(channel).catch(() => undefined);
  }

  get channelCount(): number {
    return this.listeners.size;
  }
}
