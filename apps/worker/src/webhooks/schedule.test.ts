import { WEBHOOK_MAX_ATTEMPTS, WEBHOOK_RETRY_SCHEDULE_MS } from '@imagegen/shared';
import { retryDelayMs } from './schedule';

describe('webhook retry schedule', () => {
  it('follows immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then stops', () => {
    const mid = () => 0.5;
    const delays = Array.from({ length: 9 }, (_, i) => retryDelayMs(i + 1, 1, undefined, mid));
    expect(delays).toEqual([0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000, null]);
    expect(WEBHOOK_MAX_ATTEMPTS).toBe(WEBHOOK_RETRY_SCHEDULE_MS.length + 1);
  });

  it('spreads each delay by at most ±20 % and scales it', () => {
    expect(retryDelayMs(2, 1, undefined, () => 0)).toBe(4_000);
    expect(retryDelayMs(2, 1, undefined, () => 1)).toBe(6_000);
    expect(retryDelayMs(3, 0.001, undefined, () => 0.5)).toBe(300);
  });

  it('honours a longer Retry-After, up to 10 h, and ignores a shorter one', () => {
    expect(retryDelayMs(2, 1, 60_000, () => 0.5)).toBe(60_000);
    expect(retryDelayMs(3, 1, 1_000, () => 0.5)).toBe(300_000);
    expect(retryDelayMs(1, 1, 48 * 3600_000, () => 0.5)).toBe(36_000_000);
  });

  it('caps a Retry-After at the scaled schedule longest step: a test run at 0.001 is not parked for 10 h', () => {
    expect(retryDelayMs(2, 0.001, 864_000_000, () => 0.5)).toBe(36_000);
    // shorter ones are honoured as asked, unscaled
    expect(retryDelayMs(2, 0.001, 5_000, () => 0.5)).toBe(5_000);
  });
});
