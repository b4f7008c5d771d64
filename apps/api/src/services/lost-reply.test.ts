import { outcomeOfLostReply } from './lost-reply';

it('looks for the outcome of a write whose reply was lost, not of one that never left', async () => {
  let reads = 0;
  const read = async () => {
    reads++;
    return reads >= 2 ? 'written' : null;
  };
  // refused before it was sent: nothing to look for, answered at once
  const t0 = performance.now();
  expect(await outcomeOfLostReply(new Error("Stream isn't writeable and enableOfflineQueue options is false"), read)).toBeNull();
  expect(reads).toBe(0);
  expect(performance.now() - t0).toBeLessThan(50);
  // timed out after it was sent: the first read answers (null: not there) and that is the answer
  expect(await outcomeOfLostReply(new Error('Command timed out'), read)).toBeNull();
  expect(await outcomeOfLostReply(new Error('Command timed out'), read)).toBe('written');
});

it('gives up after about a second when the outcome cannot be read', async () => {
  const t0 = performance.now();
  const never = () => new Promise<string | null>(() => undefined);
  expect(await outcomeOfLostReply(new Error('Connection is closed.'), never)).toBeNull();
  const took = performance.now() - t0;
  expect(took).toBeGreaterThanOrEqual(900);
  expect(took).toBeLessThan(3000);
});
