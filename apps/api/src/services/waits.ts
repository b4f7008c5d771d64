import type { Response } from 'express';

/**
 * Every request that waits (`Prefer: wait`, the seed endpoint, event streams) in one set,
 * with a single shutdown listener for the process: shutdown ends them all at once, and
 * each leaves the set when its response closes, so nothing of an abandoned wait stays.
 */
export class Waits {
  private readonly active = new Set<AbortController>();

  constructor(private readonly shutdown: AbortSignal) {
    shutdown.addEventListener('abort', () => {
      for (const wait of this.active) wait.abort();
    }, { once: true });
  }

  /** Aborts when the response closes (client gone, or answered) or the process begins to shut down. */
  forResponse(res: Response): AbortSignal {
    const wait = new AbortController();
    if (this.shutdown.aborted || res.closed) {
      wait.abort();
      return wait.signal;
    }
    this.active.add(wait);
    res.once('close', () => {
      this.active.delete(wait);
      wait.abort();
    });
    return wait.signal;
  }

  /** Waits in progress. */
  get size(): number {
    return this.active.size;
  }
}
