import { z } from 'zod';
import { commonEnvShape, ConfigError, envIntList, generatorEnvShape, parseEnv, resolvePublicBaseUrl } from './config';

const schema = z.object({ ...commonEnvShape, ...generatorEnvShape, SIZES: envIntList([1024, 512, 256]) });

it('embeds the contract defaults', () => {
  const c = parseEnv(schema, {});
  expect(c).toMatchObject({ REDIS_URL: 'redis://127.0.0.1:6379', QUEUE_PREFIX: 'imagegen', PORT: 3000, DATA_DIR: './data', GENERATOR_MAX_ATTEMPTS: 5, GENERATOR_BACKOFF_MS: 2000 });
  expect(resolvePublicBaseUrl(c.PUBLIC_BASE_URL, c.PORT)).toBe('http://localhost:3000');
  expect(c.SIZES).toEqual([1024, 512, 256]);
});

it('parses values and treats empty strings as unset', () => {
  const c = parseEnv(schema, { PORT: '8080', QUEUE_PREFIX: '', SIZES: '128, 64,128', PUBLIC_BASE_URL: 'https://img.example.com/' });
  expect(c.PORT).toBe(8080);
  expect(c.QUEUE_PREFIX).toBe('imagegen');
  expect(c.SIZES).toEqual([128, 64]);
  expect(resolvePublicBaseUrl(c.PUBLIC_BASE_URL, c.PORT)).toBe('https://img.example.com');
});

it('treats blank values of every kind as unset', () => {
  const c = parseEnv(schema, { PORT: '', GENERATOR_MAX_ATTEMPTS: ' ', LOG_LEVEL: '' });
  expect([c.PORT, c.GENERATOR_MAX_ATTEMPTS, c.LOG_LEVEL]).toEqual([3000, 5, 'info']);
});

it('names every bad variable at once', () => {
  let error: unknown;
  try {
    parseEnv(schema, { PORT: 'eighty', REDIS_URL: 'http://nope', GENERATOR_MAX_ATTEMPTS: '0', SIZES: '10,abc' });
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(ConfigError);
  const message = (error as Error).message;
  for (const name of ['PORT', 'REDIS_URL', 'GENERATOR_MAX_ATTEMPTS', 'SIZES']) expect(message).toContain(name);
});
