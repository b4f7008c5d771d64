import { createHash } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import fc from 'fast-check';
import { jsonDigest, jsonDigestSync } from './json-digest';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** A plain canonical form to check against: objects rebuilt with sorted member names. */
const sorted = (v: unknown): unknown =>
  Array.isArray(v) ? v.map(sorted) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])])) : v;

it('is the digest of the JSON text with every object’s members sorted, sync and piecewise alike', async () => {
  await fc.assert(
    fc.asyncProperty(fc.jsonValue({ maxDepth: 5 }), async (v) => {
      const expected = sha(JSON.stringify(sorted(v)));
      expect(jsonDigestSync(v)).toBe(expected);
      expect(await jsonDigest(v)).toBe(expected);
    }),
    { numRuns: 500 },
  );
  const batch = { defaults: { size: 'SQUARE' }, items: Array.from({ length: 2500 }, (_, i) => ({ topic: `t ${i}`, metadata: { tags: [i, 'x'] } })), metadata: { run: 1 } };
  expect(await jsonDigest(batch)).toBe(sha(JSON.stringify(sorted(batch))));
  expect(await jsonDigest('a string body\n{"topic":"x"}')).toBe(sha(JSON.stringify('a string body\n{"topic":"x"}')));
});

it('does not depend on member order at any depth', async () => {
  const a = { topic: 'x', metadata: { order: 1, tags: { b: 2, a: [{ y: 1, x: 2 }] } } };
  const b = { metadata: { tags: { a: [{ x: 2, y: 1 }], b: 2 }, order: 1 }, topic: 'x' };
  expect(jsonDigestSync(a)).toBe(jsonDigestSync(b));
  expect(await jsonDigest(a)).toBe(await jsonDigest(b));
});

it('tells apart bodies that differ in one item, in array order or in a nested value', async () => {
  const a = { items: [{ topic: 'a' }, { topic: 'b' }] };
  expect(await jsonDigest(a)).not.toBe(await jsonDigest({ items: [{ topic: 'a' }, { topic: 'c' }] }));
  expect(await jsonDigest(a)).not.toBe(await jsonDigest({ items: [{ topic: 'b' }, { topic: 'a' }] }));
  expect(jsonDigestSync({ m: { a: 1 } })).not.toBe(jsonDigestSync({ m: { a: '1' } }));
  expect(jsonDigestSync({ m: { a: 1 } })).not.toBe(jsonDigestSync({ m: { a: 1, b: null } }));
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
