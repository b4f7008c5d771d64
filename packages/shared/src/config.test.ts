import { z } from 'zod';
import { commonEnvShape, ConfigError, envIntList, envNumber, generatorEnvShape, parseEnv, publicPathPrefix, refineStorageEnv, resolveFilesBaseUrl, resolvePublicBaseUrl, storageEnvShape, weakWebhookSecretWarning, webhookEnvShape } from './config';

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

it('takes every pino level, numbers in any plain decimal form, and a master secret of any length', () => {
  for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) expect(parseEnv(schema, { LOG_LEVEL: level }).LOG_LEVEL).toBe(level);
  const numbers = z.object({ SCALE: envNumber(1) });
  expect(['0.001', '.001', '1e-3', '1E-3', '2', '2.'].map((SCALE) => parseEnv(numbers, { SCALE }).SCALE)).toEqual([0.001, 0.001, 0.001, 0.001, 2, 2]);
  for (const SCALE of ['-1', 'abc', '1e', '0x10']) expect(() => parseEnv(numbers, { SCALE })).toThrow(ConfigError);
  const secrets = z.object(webhookEnvShape);
  expect(parseEnv(secrets, { WEBHOOK_SECRET: 'test-secret' }).WEBHOOK_SECRET).toBe('test-secret');
  // taken, with a warning that names the risk and never the value
  expect(weakWebhookSecretWarning('test-secret')).toMatch(/^WEBHOOK_SECRET is shorter than 16 characters/);
  expect(weakWebhookSecretWarning('test-secret')).not.toContain('test-secret');
  expect([weakWebhookSecretWarning('a-master-secret-of-32-characters'), weakWebhookSecretWarning(undefined)]).toEqual([undefined, undefined]);
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

it('prints one self-contained line per bad variable', () => {
  let message = '';
  try {
    parseEnv(schema, { PORT: 'eighty', PUBLIC_BASE_URL: '/relative' });
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message.split('\n').sort()).toEqual([
    'Invalid configuration: PORT: must be a whole number',
    'Invalid configuration: PUBLIC_BASE_URL: must be an absolute http:// or https:// URL (a path prefix is fine; no query, fragment or credentials)',
  ]);
});

describe('PUBLIC_BASE_URL', () => {
  const base = (v: string) => resolvePublicBaseUrl(parseEnv(schema, { PUBLIC_BASE_URL: v }).PUBLIC_BASE_URL, 3000);

  it('keeps a path prefix and drops trailing slashes', () => {
    expect(base('http://host/imagegen/')).toBe('http://host/imagegen');
    expect(base('https://img.example.com/a/b//')).toBe('https://img.example.com/a/b');
    expect(base('HTTPS://Img.Example.com:8443')).toBe('https://img.example.com:8443');
    expect(publicPathPrefix(base('http://host/imagegen/'))).toBe('/imagegen');
    expect(publicPathPrefix(base('http://host/'))).toBe('');
  });

  it.each(['/imagegen', 'localhost:3000', 'host/imagegen', 'ftp://host/x', 'http://', 'http://host/x?y=1', 'http://host/x#top', 'http://user:secret@host/', 'http://host/?'])('refuses %s', (v) => {
    expect(() => parseEnv(schema, { PUBLIC_BASE_URL: v })).toThrow(/^Invalid configuration: PUBLIC_BASE_URL: must be an absolute http:\/\/ or https:\/\/ URL[^\n]*$/);
  });

  it('never echoes the value (it may carry credentials)', () => {
    expect(() => parseEnv(schema, { PUBLIC_BASE_URL: 'http://user:secret@host/' })).toThrow(/^(?![\s\S]*secret)/);
  });
});

describe('storage settings', () => {
  const storageSchema = z.object({ ...commonEnvShape, ...storageEnvShape }).superRefine(refineStorageEnv);
  const refusal = (env: Record<string, string>) => {
    try {
      parseEnv(storageSchema, env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('the configuration was accepted');
  };

  it('default to files on disk, and to the API serving them', () => {
    const c = parseEnv(storageSchema, {});
    expect(c).toMatchObject({ STORAGE: 'fs', S3_REGION: 'us-east-1', S3_FORCE_PATH_STYLE: false });
    expect(c.S3_BUCKET).toBeUndefined();
    expect(resolveFilesBaseUrl('http://localhost:3000', c.S3_PUBLIC_BASE_URL)).toBe('http://localhost:3000/files');
    expect(resolveFilesBaseUrl('https://example.com/imagegen', undefined)).toBe('https://example.com/imagegen/files');
  });

  it('read an object store, whose public address then starts every file URL', () => {
    const c = parseEnv(storageSchema, {
      STORAGE: 's3',
      S3_BUCKET: 'images',
      S3_ENDPOINT: 'http://minio:9000/',
      S3_REGION: 'eu-west-1',
      S3_FORCE_PATH_STYLE: 'true',
      S3_PUBLIC_BASE_URL: 'https://cdn.example.com/images/',
    });
    expect(c).toMatchObject({ STORAGE: 's3', S3_BUCKET: 'images', S3_ENDPOINT: 'http://minio:9000', S3_REGION: 'eu-west-1', S3_FORCE_PATH_STYLE: true });
    expect(resolveFilesBaseUrl('http://localhost:3000', c.S3_PUBLIC_BASE_URL)).toBe('https://cdn.example.com/images');
  });

  it('refuse STORAGE=s3 without a bucket, and a public base without object storage, in one line each', () => {
    expect(refusal({ STORAGE: 's3' })).toBe('Invalid configuration: S3_BUCKET: required when STORAGE=s3');
    expect(refusal({ STORAGE: 's3', S3_BUCKET: ' ' })).toBe('Invalid configuration: S3_BUCKET: required when STORAGE=s3');
    expect(refusal({ S3_PUBLIC_BASE_URL: 'https://cdn.example.com' })).toBe('Invalid configuration: S3_PUBLIC_BASE_URL: only applies when STORAGE=s3');
    expect(refusal({ STORAGE: 'gcs' })).toBe('Invalid configuration: STORAGE: must be one of fs, s3');
    expect(refusal({ STORAGE: 's3', S3_BUCKET: 'bkt', S3_ENDPOINT: 'http://user:secret@minio:9000' })).toMatch(/^Invalid configuration: S3_ENDPOINT: must be an absolute http/);
    expect(refusal({ STORAGE: 's3', S3_BUCKET: 'a/b' })).toMatch(/^Invalid configuration: S3_BUCKET: must be a bucket name/);
  });
});
