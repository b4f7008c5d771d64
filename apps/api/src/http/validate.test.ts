import { z } from 'zod';
import { HttpProblem } from './problem';
import { parseQuery, preferWaitSeconds, queryWholeNumber } from './validate';

it('reads Prefer: wait=N and caps it', () => {
  expect(preferWaitSeconds('wait=10', 60)).toBe(10);
  expect(preferWaitSeconds('respond-async, wait=5', 60)).toBe(5);
  expect(preferWaitSeconds('WAIT = 7', 60)).toBe(7);
  expect(preferWaitSeconds('wait=600', 60)).toBe(60);
  expect(preferWaitSeconds('return=minimal', 60)).toBeUndefined();
  expect(preferWaitSeconds(undefined, 60)).toBeUndefined();
  expect(preferWaitSeconds('await=5', 60)).toBeUndefined();
  expect(preferWaitSeconds('wait="5"', 60)).toBe(5);
  expect(preferWaitSeconds('respond-async; wait="12"', 60)).toBe(12);
  expect(preferWaitSeconds('wait="5', 60)).toBeUndefined();
  expect(preferWaitSeconds('wait=5x', 60)).toBeUndefined();
});

it('reads a parameter given empty as not given, and still names a bad one', () => {
  const schema = z.strictObject({ status: z.enum(['queued', 'failed']).optional(), limit: z.coerce.number().int().min(1).default(20), cursor: z.string().regex(/^gen_/).optional() });
  expect(parseQuery(schema, { status: '', limit: '', cursor: '' })).toEqual({ limit: 20 });
  expect(parseQuery(schema, { status: 'failed', limit: '5' })).toEqual({ status: 'failed', limit: 5 });
  let problem: unknown;
  try {
    parseQuery(schema, { status: 'nope', cursor: '' });
  } catch (e) {
    problem = e;
  }
  expect(problem).toBeInstanceOf(HttpProblem);
  expect((problem as HttpProblem).status).toBe(400);
  expect((problem as HttpProblem).errors).toEqual([{ path: 'status', message: expect.any(String) }]);
  // a parameter given twice (?limit=1&limit=2) is named as such
  expect(() => parseQuery(schema, { limit: ['1', '2'], status: 'failed' })).toThrow(expect.objectContaining({ status: 400, errors: [{ path: 'limit', message: 'must be given once' }] }));
});

it('reads a whole number in a query from digits alone', () => {
  const schema = z.strictObject({ limit: queryWholeNumber(1, 100, 20) });
  expect(parseQuery(schema, {})).toEqual({ limit: 20 });
  expect(parseQuery(schema, { limit: '7' })).toEqual({ limit: 7 });
  expect(parseQuery(schema, { limit: '100' })).toEqual({ limit: 100 });
  // each of these Number() reads as a number in range: 16, 10, 7, 5, 12
  for (const limit of ['0x10', '1e1', ' 7', '5.0', '+12', '101', '0', '-1', 'abc']) {
    expect(() => parseQuery(schema, { limit })).toThrow(expect.objectContaining({ status: 400, errors: [{ path: 'limit', message: 'must be a whole number from 1 to 100' }] }));
  }
});
