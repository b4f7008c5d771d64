import { isRedisDown } from './problem';

it('recognises Redis being away, whichever layer reports it', () => {
  expect(isRedisDown(new Error("Stream isn't writeable and enableOfflineQueue options is false"))).toBe(true);
  expect(isRedisDown(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }))).toBe(true);
  expect(isRedisDown(Object.assign(new Error('Reached the max retries per request limit'), { name: 'MaxRetriesPerRequestError' }))).toBe(true);
  expect(isRedisDown(new Error('Connection is closed.'))).toBe(true);
  expect(isRedisDown(new Error('Command timed out'))).toBe(true);
  expect(isRedisDown(new Error('Cannot read properties of undefined'))).toBe(false);
});
