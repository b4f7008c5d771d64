import { loggablePath } from './loggable-path';

it('keeps file tokens and query strings out of logged paths, whatever the case', () => {
  expect(loggablePath('/files/AbCdEf0123456789xyzABC/original.png')).toBe('/files/[redacted]');
  expect(loggablePath('/FILES/AbCdEf0123456789xyzABC/original.png')).toBe('/files/[redacted]');
  expect(loggablePath('/Files/AbCdEf0123456789xyzABC/thumb-256.webp?x=1')).toBe('/files/[redacted]');
  expect(loggablePath('/v1/generations?cursor=gen_1&limit=2')).toBe('/v1/generations');
  expect(loggablePath('/filesystem')).toBe('/filesystem');
});
