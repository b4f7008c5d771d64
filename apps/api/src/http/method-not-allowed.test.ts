import { allowedMethods } from './method-not-allowed';

const allowed = allowedMethods({
  '/v1/generations': { post: {}, get: {} },
  '/v1/generations/{id}': { get: {}, delete: {} },
  '/files/{token}/{name}': { get: {} },
});

it('names the methods of a documented path, templates matching one segment each', () => {
  expect(allowed('/v1/generations')).toEqual(['POST', 'GET', 'HEAD', 'OPTIONS']);
  expect(allowed('/v1/generations/')).toEqual(['POST', 'GET', 'HEAD', 'OPTIONS']);
  expect(allowed('/v1/generations/gen_1')).toEqual(['GET', 'HEAD', 'DELETE', 'OPTIONS']);
  expect(allowed('/files/abc/thumb-256.webp')).toEqual(['GET', 'HEAD', 'OPTIONS']);
  expect(allowed('/V1/Generations')).toEqual(['POST', 'GET', 'HEAD', 'OPTIONS']);
});

it('knows nothing of other paths', () => {
  expect(allowed('/v1/generations/gen_1/nope')).toBeNull();
  expect(allowed('/files/abc')).toBeNull();
  expect(allowed('/v1/generationsX')).toBeNull();
  expect(allowed('/')).toBeNull();
});
