import { isRedisDown } from '../http/problem';

/** How long the outcome of a write whose reply was lost is looked for (the connection may be coming back). */
const LOOK_MS = 1000;

/**
 * What a write whose reply was lost did. A command timeout or a dropped connection after Redis
 * ran a script looks like a failure: answered as one, a client told 503 submits again and pays
 * twice. `read` looks for the write's outcome (null: not there); it is tried, with growing pauses,
 * for up to a second. A read queued behind the write sees its outcome. Resolves null when the
 * failure was not a lost reply, when the outcome is not there, or when it could not be read.
 */
export async function outcomeOfLostReply<T>(err: unknown, read: () => Promise<T | null>): Promise<T | null> {
  if (!isRedisDown(err)) return null;
  const deadline = performance.now() + LOOK_MS;
  const until = (ms: number) => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), Math.max(0, ms)));
  for (let pause = 100; performance.now() < deadline; pause *= 2) {
    await until(Math.min(pause, deadline - performance.now()));
    const attempt = read().then(
      (value) => ({ value }),
      () => undefined,
    );
    // read: there or not, that is the answer; unread (Redis still away): look again while there is time
    const found = await Promise.race([attempt, until(deadline - performance.now())]);
    if (found) return found.value;
  }
  return null;
}
