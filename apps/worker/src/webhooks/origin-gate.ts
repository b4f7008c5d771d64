/**
 * At most `limit` requests per origin in the connection pool at once; the rest wait here, in
 * order. Undici cannot take a request back out of its own queue: one that waited there past its
 * deadline would still be given a connection, only to be aborted on it (the connection with it).
 * Waiting here instead, a request whose deadline passes is simply dropped.
 */
export class OriginGate {
  private readonly origins = new Map<string, { active: number; waiting: Set<() => void> }>();

  constructor(private readonly limit: number) {}

  /** Runs `start` now if the origin has a free place, else once one frees. */
  enter(origin: string, start: () => void): void {
    let o = this.origins.get(origin);
    if (!o) this.origins.set(origin, (o = { active: 0, waiting: new Set() }));
    if (o.active < this.limit) {
      o.active++;
      start();
    } else {
      o.waiting.add(start);
    }
  }

  /** Gives up a wait; false if it was not waiting (it has started). */
  drop(origin: string, start: () => void): boolean {
    return this.origins.get(origin)?.waiting.delete(start) ?? false;
  }

  /** A request is done with its connection: its place goes to the next waiting one, which starts in a microtask. */
  leave(origin: string): void {
    const o = this.origins.get(origin);
    if (!o) return;
    const next = o.waiting.values().next();
    if (!next.done) {
      o.waiting.delete(next.value);
      // started from a fresh stack: a long line of waiters that end at once is not one deep recursion
      queueMicrotask(next.value);
      return;
    }
    o.active--;
    if (o.active === 0) this.origins.delete(origin);
  }
}
