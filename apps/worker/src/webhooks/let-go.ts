// Attempts slow to be answered let go of the place they hold: a dispatcher's place (dispatcher.ts)
// or a job slot (delivery.worker.ts), keeping their host slot.

/**
 * An attempt unanswered this long gives its place back: endpoints that hang would otherwise hold
 * every place until they time out, and with as many hanging hosts as places take bound slots, no
 * other endpoint would be sent anything meanwhile.
 */
export const SLOW_ATTEMPT_MS = 1_000;
/** Slow attempts let go of their places, at most this many per place (each is bounded by its host's slots and the timeout too). */
export const SLOW_PER_PLACE = 4;

/**
 * How long a job's lock lasts, and so how long a job whose attempt let go of it waits before it
 * runs again should its outcome never be handled (its process died): an attempt holding its job
 * is given as long before it is taken for stalled.
 */
export const lockMs = (timeoutMs: number) => Math.max(30_000, timeoutMs * 2 + 5_000);

/**
 * The attempts that let go of their place, bounded. A job's attempt goes on here, its outcome
 * then moving the job on (next step, or done), and closing the worker waits for them (add, drain);
 * the dispatcher only counts its own (take, giveBack) and waits for them itself.
 */
export class LetGo {
  private readonly running = new Set<Promise<void>>();
  /** Places taken, including those whose job is still being moved. */
  private taken = 0;
  private closing = false;

  constructor(private readonly max: number) {}

  /** Takes a place for an attempt about to let go, if one is free. */
  take(): boolean {
    if (this.closing || this.taken >= this.max) return false;
    this.taken++;
    return true;
  }

  /** Gives back a place taken for an attempt that kept its job after all. */
  giveBack(): void {
    this.taken--;
  }

  /** The rest of an attempt that let go; its place is given back when it ends. */
  add(work: Promise<void>): void {
    const tracked = work.finally(() => {
      this.taken--;
      this.running.delete(tracked);
    });
    this.running.add(tracked);
  }

  async drain(): Promise<void> {
    this.closing = true;
    while (this.running.size) await Promise.allSettled([...this.running]);
  }
}

/** Whether `work` is still under way after `ms` (its failure counts as an answer: the caller awaits it). */
export function unansweredAfter(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms)));
  return Promise.race([work.then(() => false, () => false), late]).finally(() => clearTimeout(timer));
}
