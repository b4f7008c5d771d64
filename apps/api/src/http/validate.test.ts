import { preferWaitSeconds } from './validate';

it('reads Prefer: wait=N and caps it', () => {
  expect(preferWaitSeconds('wait=10', 60)).toBe(10);
  expect(preferWaitSeconds('respond-async, wait=5', 60)).toBe(5);
  expect(preferWaitSeconds('WAIT = 7', 60)).toBe(7);
  expect(preferWaitSeconds('wait=600', 60)).toBe(60);
  expect(preferWaitSeconds('return=minimal', 60)).toBeUndefined();
  expect(preferWaitSeconds(undefined, 60)).toBeUndefined();
  expect(preferWaitSeconds('await=5', 60)).toBeUndefined();
});
