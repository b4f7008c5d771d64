import type { Redis } from 'ioredis';

/** Called with each message, or with `null` after a reconnect: messages may have been missed, re-read. */
export type Listener = (message: string | null) => void;

/**
 * After a reconnect, listeners are told to re-read at once and again this long after it (ms):
 * ioredis reports the connection ready before it has subscribed again, and the connection a
 * listener reads with may still be coming back (its reads then fail at once), so an end
 * published in that moment is only found by a later read.
 */
const RESYNC_AFTER_MS = [0, 250, 1000, 3000];

/**
 * One subscriber connection shared by every waiter in the process. Channels are
 * reference-counted: the first listener subscribes, the last one unsubscribes.
 */
export class EventHub {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly pending = new Map<string, Promise<unknown>>();
  private connectedBefore = false;

  constructor(private readonly sub: Redis) {
    sub.on('message', (channel: string, message: string) => {
      for (const l of this.listeners.get(channel) ?? []) l(message);
    });
    // pub/sub keeps nothing for absent subscribers: after a reconnect every listener resyncs (a
    // listener gone by the time of a later resync is not told)
    sub.on('ready', () => {
      if (this.connectedBefore) {
        for (const ms of RESYNC_AFTER_MS) setTimeout(() => this.resync(), ms).unref();
      }
      this.connectedBefore = true;
    });
    if (sub.status === 'ready') this.connectedBefore = true;
  }

  private resync(): void {
    for (const set of this.listeners.values()) for (const l of set) l(null);
  }

  /** Channels this process is subscribed to. */
  get channels(): number {
    return this.listeners.size;
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
    // queued while disconnected, so the channel is not re-subscribed on reconnect and left behind
    await this.sub.unsubscribe(channel).catch(() => undefined);
  }
}
