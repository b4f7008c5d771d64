import { isTenantName } from '@imagegen/shared';
import { parseQuotaOverrides } from './quotas';

describe('QUOTA_OVERRIDES', () => {
  it('reads any of the three quotas per tenant', () => {
    const { overrides, problems } = parseQuotaOverrides(' a:submissions=100/items=5000/queued=200 , b:queued=10,,', isTenantName);
    expect(problems).toEqual([]);
    expect(overrides).toEqual({ a: { submissions: 100, items: 5000, queued: 200 }, b: { queued: 10 } });
  });

  it('names each bad entry, never accepting a broken tenant or value', () => {
    const { overrides, problems } = parseQuotaOverrides('a*:queued=1,b:queued=0,c:speed=3,d,e:items=x', isTenantName);
    expect(overrides).toEqual({});
    expect(problems).toHaveLength(5);
    expect(problems[0]).toMatch(/entry 1/);
  });

  it('a tenant called __proto__ is refused rather than polluting the table', () => {
    const { overrides } = parseQuotaOverrides('__proto__:queued=1', isTenantName);
    expect(Object.keys(overrides)).toEqual([]);
    expect(({} as Record<string, unknown>).queued).toBeUndefined();
  });
});
