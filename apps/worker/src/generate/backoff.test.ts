import { GenerationFailure } from '@imagegen/shared';
import { retryDelay } from './backoff';

const policy = { baseMs: 2000, maxMs: 60_000, jitter: 0.2 };

it('doubles from the base delay', () => {
  const mid = () => 0.5; // no jitter at the midpoint
  expect([1, 2, 3, 4].map((n) => retryDelay(n, undefined, policy, mid))).toEqual([2000, 4000, 8000, 16000]);
});

it('waits exactly the base delay before the first retry', () => {
  expect(new Set([0, 0.25, 0.75, 0.999].map((r) => retryDelay(1, undefined, policy, () => r)))).toEqual(new Set([2000]));
});

it('spreads each later delay by the jitter, within bounds', () => {
  const delays = Array.from({ length: 500 }, () => retryDelay(2, undefined, policy));
  expect(Math.min(...delays)).toBeGreaterThanOrEqual(3200);
  expect(Math.max(...delays)).toBeLessThanOrEqual(4800);
  expect(new Set(delays).size).toBeGreaterThan(50);
});

it('is capped', () => {
  expect(retryDelay(30, undefined, policy, () => 0.5)).toBe(60_000);
});

it('lets Retry-After win when it asks for longer, and only then', () => {
  const limited = new GenerationFailure('upstream_rate_limited', '429', true, 30_000);
  expect(retryDelay(1, limited, policy, () => 0.5)).toBe(30_000);
  const short = new GenerationFailure('upstream_rate_limited', '429', true, 100);
  expect(retryDelay(1, short, policy, () => 0.5)).toBe(2000);
});

it('caps even Retry-After at the longest delay', () => {
  const dayLong = new GenerationFailure('upstream_rate_limited', '429', true, 86_400_000);
  expect(retryDelay(1, dayLong, policy, () => 0.5)).toBe(60_000);
});
