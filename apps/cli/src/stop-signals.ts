/**
 * Ctrl-C (SIGINT) and SIGTERM (what a CI runner, `timeout` or `docker stop` sends) stop a run the
 * same way; the exit code says which came (130 or 143). Handlers stay installed while they run,
 * so a signal that comes while one is handled never meets Node's default (an exit on the spot,
 * with nothing said and nothing cleaned up); and signals within a moment of each other count as
 * one, since one stop often arrives twice (`timeout` signals the process and then its group).
 */

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
const SAME_STOP_MS = 100;

let received: NodeJS.Signals | undefined;
let receivedAt = -Infinity;

/** Calls `handler` on each stop (one per stop, however many signals it came as); returns what removes it. */
export function onStop(handler: () => void): () => void {
  const listener = (signal: NodeJS.Signals) => {
    const now = performance.now();
    const again = now - receivedAt < SAME_STOP_MS;
    receivedAt = now;
    if (again) return;
    received = signal;
    handler();
  };
  for (const s of SIGNALS) process.on(s, listener);
  return () => {
    for (const s of SIGNALS) process.off(s, listener);
  };
}

/** The exit code of a run ended by the last stop: 128 + the signal's number. */
export function stopExitCode(): number {
  return received === 'SIGTERM' ? 143 : 130;
}
