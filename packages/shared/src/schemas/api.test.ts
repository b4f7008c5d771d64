import { webhookRecoverSchema } from './api';

describe('a webhook recovery request', () => {
  it('says once what is wrong with a time that is no time at all, and that a time before 1970 is', () => {
    const notATime = webhookRecoverSchema.safeParse({ since: 'yesterday' });
    // before: also "must not be before 1970-01-01T00:00:00Z", for a value that is no time at all
    expect(notATime.error?.issues.map((i) => i.path.join('.'))).toEqual(['since']);
    const early = webhookRecoverSchema.safeParse({ since: '1969-12-31T23:59:59Z' });
    expect(early.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['since', 'must not be before 1970-01-01T00:00:00Z']]);
    expect(webhookRecoverSchema.safeParse({ since: '2026-12-01T00:00:00Z' }).success).toBe(true);
  });
});
