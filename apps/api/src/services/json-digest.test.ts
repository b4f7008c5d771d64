import { createHash } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import fc from 'fast-check';
import { jsonDigest } from './json-digest';

const whole = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex');

it('equals the digest of JSON.stringify for any JSON value', async () => {
  await fc.assert(
    fc.asyncProperty(fc.jsonValue({ maxDepth: 5 }), async (v) => expect(await jsonDigest(v)).toBe(whole(v))),
    { numRuns: 500 },
  );
  const batch = { defaults: { size: 'SQUARE' }, items: Array.from({ length: 2500 }, (_, i) => ({ topic: `t ${i}`, metadata: { tags: [i, 'x'] } })), metadata: { run: 1 } };
  expect(await jsonDigest(batch)).toBe(whole(batch));
  expect(await jsonDigest('a string body\n{"topic":"x"}')).toBe(whole('a string body\n{"topic":"x"}'));
});

it('tells bodies apart that differ in one item or in member order', async () => {
  const a = { items: [{ topic: 'a' }, { topic: 'b' }] };
  expect(await jsonDigest(a)).not.toBe(await jsonDigest({ items: [{ topic: 'a' }, { topic: 'c' }] }));
  expect(await jsonDigest({ metadata: {}, items: a.items })).not.toBe(await jsonDigest({ items: a.items, metadata: {} }));
});

it('lets the event loop run while a large array is hashed', async () => {
  let turns = 0;
  let hashing = true;
  void (async () => {
    while (hashing) {
      turns++;
      await yieldToLoop();
    }
  })();
  await jsonDigest({ items: Array.from({ length: 20_000 }, (_, i) => ({ topic: `t ${i}` })) });
  hashing = false;
  expect(turns).toBeGreaterThanOrEqual(19);
});
