import { CliError } from './client';
import { retrying } from './retry';
import { retryNotices } from './retry-notice';

const fast = { giveUpAfterMs: 200, firstDelayMs: 5, maxDelayMs: 20 };
const transient = () => new CliError('not now', 1, true);

it('tries again after a retryable failure until it succeeds', async () => {
  let calls = 0;
  const value = await retrying(async () => {
    if (++calls < 4) throw transient();
    return 'done';
  }, undefined, fast);
  expect([value, calls]).toEqual(['done', 4]);
});

it('does not try again after a failure that is not retryable', async () => {
  let calls = 0;
  const refused = new CliError('no', 1, false);
  await expect(
    retrying(async () => {
      calls++;
      throw refused;
    }, undefined, fast),
  ).rejects.toBe(refused);
  await expect(retrying(async () => Promise.reject(new Error('a bug')), undefined, fast)).rejects.toThrow('a bug');
  expect(calls).toBe(1);
});

it('gives up with the last failure once a streak of failures has lasted long enough', async () => {
  let calls = 0;
  const started = Date.now();
  await expect(
    retrying(async () => {
      calls++;
      throw new CliError(`failure ${calls}`, 1, true);
    }, undefined, fast),
  ).rejects.toThrow(/failure \d+/);
  expect(Date.now() - started).toBeGreaterThanOrEqual(fast.giveUpAfterMs);
  // pauses double up to the cap: far fewer tries than the window holds at the first pause
  expect(calls).toBeGreaterThan(3);
  expect(calls).toBeLessThan(fast.giveUpAfterMs / fast.firstDelayMs);
});

it('an attempt that made progress starts a new streak: it is not given up for earlier failures', async () => {
  let calls = 0;
  const value = await retrying(async (succeeded) => {
    calls++;
    // each attempt progresses a little and then breaks off, for longer in all than the window
    succeeded();
    if (calls < 30) {
      await new Promise((r) => setTimeout(r, 10));
      throw transient();
    }
    return calls;
  }, undefined, fast);
  expect(value).toBe(30);
});

it('stops waiting at once when its signal is aborted', async () => {
  const ac = new AbortController();
  const slow = { giveUpAfterMs: 60_000, firstDelayMs: 30_000, maxDelayMs: 30_000 };
  const started = Date.now();
  const run = retrying(async () => Promise.reject(transient()), ac.signal, slow);
  setTimeout(() => ac.abort(), 20);
  await expect(run).rejects.toThrow();
  expect(Date.now() - started).toBeLessThan(5_000);
});

it('tries again only the failures the caller names retryable', async () => {
  let calls = 0;
  const quota = new CliError('over quota', 1, true, 429);
  await expect(
    retrying(
      async () => {
        calls++;
        throw quota;
      },
      undefined,
      fast,
      (err) => err.retryable && err.status !== 429,
    ),
  ).rejects.toBe(quota);
  expect(calls).toBe(1);
});

it('tells each failure it will try again, with the count so far and the pause before the next', async () => {
  const told: [string, number, number][] = [];
  let calls = 0;
  await retrying(
    async () => {
      if (++calls < 4) throw new CliError(`failure ${calls}`, 1, true);
      return 'done';
    },
    undefined,
    fast,
    undefined,
    (err, failures, delayMs) => told.push([err.message, failures, delayMs]),
  );
  expect(told).toEqual([
    ['failure 1', 1, 5],
    ['failure 2', 2, 10],
    ['failure 3', 3, 20],
  ]);
});

it('notices make a line at the first failure and then one at most every so often, whichever loop fails', () => {
  const lines: string[] = [];
  let now = 0;
  const notice = retryNotices((l) => lines.push(l), 30_000, () => now);
  const down = new CliError('Cannot reach the imagegen API at http://x (ECONNREFUSED); check IMAGEGEN_URL or --url\nsecond line', 1, true);
  notice(down, 1, 250);
  now = 10_000;
  notice(down, 1, 250);
  notice(down, 5, 4000);
  now = 31_000;
  notice(down, 8, 10_000);
  expect(lines).toEqual([
    'imagegen: Cannot reach the imagegen API at http://x (ECONNREFUSED); check IMAGEGEN_URL or --url; trying again in 0.3 s (1 failed try)',
    'imagegen: Cannot reach the imagegen API at http://x (ECONNREFUSED); check IMAGEGEN_URL or --url; trying again in 10 s (8 failed tries)',
  ]);
});
