import { pointInTime } from './webhooks';

it('reads a time as ISO 8601 or as how long ago', () => {
  const now = Date.parse('2026-12-05T12:00:00.000Z');
  expect(pointInTime('2h', now)).toBe('2026-12-05T10:00:00.000Z');
  expect(pointInTime('90s', now)).toBe('2026-12-05T11:58:30.000Z');
  expect(pointInTime('1.5d', now)).toBe('2026-12-04T00:00:00.000Z');
  expect(pointInTime('2026-12-01T09:00:00+01:00', now)).toBe('2026-12-01T08:00:00.000Z');
  for (const bad of ['yesterday', '2h ago', '-1h', '12', '', 'Dec 1']) expect(() => pointInTime(bad, now)).toThrow(/ISO 8601/);
});
