import { interleave, shareWindow } from './fair-share';

describe('shareWindow', () => {
  it('gives a newcomer tenant the free slots first until loads even out', () => {
    const grants = shareWindow(
      [
        { tenant: 'a', batchId: 'batch_a', remaining: 10_000, inFlight: 90 },
        { tenant: 'b', batchId: 'batch_b', remaining: 200, inFlight: 0 },
      ],
      100,
    );
    expect(grants.get('batch_b')).toHaveLength(95);
    expect(grants.get('batch_a')).toHaveLength(5);
    // each slot carries its tenant's load when granted: b's first ones rank ahead of all of a's
    expect(grants.get('batch_b')?.slice(0, 3)).toEqual([0, 1, 2]);
    expect(grants.get('batch_a')).toEqual([90, 91, 92, 93, 94]);
  });

  it('shares a tenant’s part between its batches, and never grants more than remains', () => {
    const grants = shareWindow(
      [
        { tenant: 'a', batchId: 'batch_1', remaining: 3, inFlight: 0 },
        { tenant: 'a', batchId: 'batch_2', remaining: 100, inFlight: 0 },
        { tenant: 'c', batchId: 'batch_3', remaining: 100, inFlight: 0 },
      ],
      40,
    );
    expect(grants.get('batch_1')).toHaveLength(3);
    expect(grants.get('batch_2')).toHaveLength(17);
    expect(grants.get('batch_3')).toHaveLength(20);
  });
});

describe('interleave', () => {
  it('alternates tenants first, then batches within a tenant', () => {
    const out = interleave([
      { tenant: 'a', items: ['a1-0', 'a1-1'] },
      { tenant: 'a', items: ['a2-0', 'a2-1'] },
      { tenant: 'b', items: ['b-0', 'b-1', 'b-2'] },
    ]);
    expect(out).toEqual(['a1-0', 'b-0', 'a2-0', 'b-1', 'a1-1', 'b-2', 'a2-1']);
  });
});
