import { Semaphore } from './semaphore';

it('never runs more than its capacity at once, and runs everything', async () => {
  const sem = new Semaphore(3);
  let running = 0;
  let peak = 0;
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      sem.run(async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5 + (i % 3)));
        running--;
        return i;
      }),
    ),
  );
  expect(peak).toBe(3);
  expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i));
  expect(sem.inUse).toBe(0);
});

it('releases its slot when the task throws', async () => {
  const sem = new Semaphore(1);
  await expect(sem.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  expect(await sem.run(async () => 'next')).toBe('next');
});
