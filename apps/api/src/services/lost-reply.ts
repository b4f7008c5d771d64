import { setTimeout as sleep } from 'node:timers/promises';

/** How long the outcome of a write whose reply was lost is looked for (the connection may be coming back). */
const LOOK_MS = 1000;
/** Each read gets at least this long to answer, the last one too. */
const READ_MS = 200;

/**
 * Whether a failed command may still have run: its reply was lost (a timeout, a connection that
 * dropped after it was sent). A command refused before it left (no connection, the offline queue
 * off) did not run, and its caller is answered at once.
 */
function mayHaveRun(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  return e?.name === 'MaxRetriesPerRequestError' || /Command timed out|Connection is closed|ECONNRESET|EPIPE/.test(e?.message ?? '');
}

/**
 * What a write whose reply was lost did. A command timeout or a dropped connection after Redis
 * ran a script looks like a failure: answered as one, a client told 503 submits again and pays
 * twice. `read` looks for the write's outcome (null: not there); it is tried, with growing pauses,
 * for up to a second. A read queued behind the write sees its outcome. Resolves null when the
 * write cannot have run, when its outcome is not there, or when it could not be read in time (a
 * write still queued in the client then may yet run: the 503 says so only as likely).
 */
export async function outcomeOfLostReply<T>(err: unknown, read: () => Promise<T | null>): Promise<T | null> {
  if (!mayHaveRun(err)) return null;
  const deadline = performance.now() + LOOK_MS;
  const until = (ms: number) => sleep(Math.max(0, ms), undefined);
  for (let pause = 100; performance.now() < deadline; pause *= 2) {
    await until(Math.min(pause, deadline - performance.now()));
    const attempt = read().then(
      (value) => ({ value }),
      () => undefined,
    );
    // read: there or not, that is the answer; unread (Redis still away): look again while there is time
    const found = await Promise.race([attempt, until(Math.max(READ_MS, deadline - performance.now()))]);
    if (found) return found.value;
  }
  return null;
}
