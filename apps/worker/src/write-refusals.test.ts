import { ReplyError } from 'ioredis';
import { REFUSAL_FIRST_WAIT_MS, waitingOutWriteRefusals } from './write-refusals';

// what Redis answers a script that may write while it is over maxmemory
const oom = () => new ReplyError("OOM command not allowed when used memory > 'maxmemory'.");

it('waits out a refusal for memory and runs again, within the same call', async () => {
  const waits: number[] = [];
  let runs = 0;
  const started = performance.now();
  const out = await waitingOutWriteRefusals(
    async () => {
      if (++runs === 1) throw oom();
      return 'done';
    },
    new AbortController().signal,
    (_refusal, ms) => waits.push(ms),
  );
  expect({ out, runs, waits }).toEqual({ out: 'done', runs: 2, waits: [REFUSAL_FIRST_WAIT_MS] });
  expect(performance.now() - started).toBeGreaterThanOrEqual(REFUSAL_FIRST_WAIT_MS - 5);
});

it('throws any other failure at once', async () => {
  let runs = 0;
  const failure = new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value');
  await expect(
    waitingOutWriteRefusals(
      async () => {
        runs++;
        throw failure;
      },
      new AbortController().signal,
      () => undefined,
    ),
  ).rejects.toBe(failure);
  expect(runs).toBe(1);
});

it('stops waiting when aborted (the generation cancelled) and throws the refusal', async () => {
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 100);
  const started = performance.now();
  await expect(
    waitingOutWriteRefusals(
      async () => {
        throw oom();
      },
      abort.signal,
      () => undefined,
    ),
  ).rejects.toThrow(/^OOM /);
  expect(performance.now() - started).toBeLessThan(REFUSAL_FIRST_WAIT_MS);
});
