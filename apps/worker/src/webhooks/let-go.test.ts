import { LetGo, lockMs, unansweredAfter } from './let-go';

it('bounds the attempts that let go, gives a place back when one ends, and refuses more once draining', async () => {
  const letGo = new LetGo(2);
  expect([letGo.take(), letGo.take(), letGo.take()]).toEqual([true, true, false]);
  letGo.giveBack();
  expect(letGo.take()).toBe(true);
  let finish: () => void = () => undefined;
  letGo.add(new Promise<void>((resolve) => (finish = resolve)));
  letGo.add(Promise.resolve());
  await new Promise((resolve) => setImmediate(resolve));
  // one ended: its place is free again
  expect(letGo.take()).toBe(true);
  letGo.giveBack();
  let drained = false;
  const draining = letGo.drain().then(() => (drained = true));
  expect(letGo.take()).toBe(false);
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(drained).toBe(false);
  finish();
  await draining;
  expect(drained).toBe(true);
});

it('tells an attempt still under way after the wait from one answered (or failed) before it', async () => {
  const late = new Promise((resolve) => setTimeout(resolve, 200));
  expect(await unansweredAfter(late, 20)).toBe(true);
  expect(await unansweredAfter(Promise.resolve(1), 20)).toBe(false);
  expect(await unansweredAfter(Promise.reject(new Error('no')), 20)).toBe(false);
});

it('waits a lock time of twice the timeout and 5 s, at least 30 s', () => {
  expect([lockMs(10_000), lockMs(20_000)]).toEqual([30_000, 45_000]);
});
