import { ConfigError } from '@imagegen/shared';
import { loadWorkerConfig } from './config';

function refusal(env: Record<string, string>): string {
  try {
    loadWorkerConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('the configuration was accepted');
}

it('refuses GENERATOR=openai without GENERATOR_API_KEY', () => {
  expect(refusal({ GENERATOR: 'openai' })).toBe('Invalid configuration: GENERATOR_API_KEY: required when GENERATOR=openai');
  expect(refusal({ GENERATOR: 'openai', GENERATOR_API_KEY: ' ' })).toBe('Invalid configuration: GENERATOR_API_KEY: required when GENERATOR=openai');
  expect(loadWorkerConfig({ GENERATOR: 'openai', GENERATOR_API_KEY: 'sk-x' })).toMatchObject({ GENERATOR: 'openai', GENERATOR_URL: 'https://api.openai.com/v1/images/generations' });
  // the seed API and the builtin renderer run without one
  expect(loadWorkerConfig({ GENERATOR: 'aistudios' }).GENERATOR_API_KEY).toBeUndefined();
  expect(loadWorkerConfig({}).GENERATOR).toBe('builtin');
});

it('refuses a PUBLIC_BASE_URL that is not an absolute http(s) URL, and keeps a path prefix', () => {
  expect(refusal({ PUBLIC_BASE_URL: 'img.example.com/imagegen' })).toMatch(/^Invalid configuration: PUBLIC_BASE_URL: must be an absolute http:\/\/ or https:\/\/ URL[^\n]*$/);
  expect(loadWorkerConfig({ PUBLIC_BASE_URL: 'https://img.example.com/imagegen/' }).PUBLIC_BASE_URL).toBe('https://img.example.com/imagegen');
});

it('names every problem at once, one line each', () => {
  expect(refusal({ GENERATOR: 'openai', PORT: 'x' }).split('\n')).toEqual(['Invalid configuration: PORT: must be a whole number', 'Invalid configuration: GENERATOR_API_KEY: required when GENERATOR=openai']);
});

it('refuses STORAGE=s3 without S3_BUCKET, and computes where file URLs start', () => {
  expect(refusal({ STORAGE: 's3' })).toBe('Invalid configuration: S3_BUCKET: required when STORAGE=s3');
  expect(refusal({ STORAGE: 's3', GENERATOR: 'openai' }).split('\n').sort()).toEqual([
    'Invalid configuration: GENERATOR_API_KEY: required when GENERATOR=openai',
    'Invalid configuration: S3_BUCKET: required when STORAGE=s3',
  ]);
  expect(loadWorkerConfig({ PORT: '8080' }).filesBaseUrl).toBe('http://localhost:8080/files');
  expect(loadWorkerConfig({ STORAGE: 's3', S3_BUCKET: 'images', S3_PUBLIC_BASE_URL: 'https://cdn.example.com' }).filesBaseUrl).toBe('https://cdn.example.com');
});

it('holds a failing webhook host back on the retry schedule’s clock unless WEBHOOK_CIRCUIT_OPEN_MS is given', () => {
  expect(loadWorkerConfig({}).WEBHOOK_CIRCUIT_OPEN_MS).toBe(30_000);
  expect(loadWorkerConfig({ WEBHOOK_RETRY_SCALE: '0.1' }).WEBHOOK_CIRCUIT_OPEN_MS).toBe(3000);
  expect(loadWorkerConfig({ WEBHOOK_RETRY_SCALE: '0.001' }).WEBHOOK_CIRCUIT_OPEN_MS).toBe(100);
  expect(loadWorkerConfig({ WEBHOOK_RETRY_SCALE: '0.001', WEBHOOK_CIRCUIT_OPEN_MS: '45000' }).WEBHOOK_CIRCUIT_OPEN_MS).toBe(45_000);
  expect(refusal({ WEBHOOK_CIRCUIT_OPEN_MS: '5' })).toMatch(/WEBHOOK_CIRCUIT_OPEN_MS/);
});
