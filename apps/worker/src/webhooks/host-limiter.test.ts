import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { keysFor } from '@imagegen/shared';
import { HostLimiter } from './host-limiter';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-limiter-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;

beforeAll(() => {
  redis = new Redis(url);
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

const limiter = (overrides: Partial<ConstructorParameters<typeof HostLimiter>[2]> = {}) =>
  new HostLimiter(redis, keys, { maxInFlight: 2, leaseMs: 10_000, circuitFailures: 3, circuitOpenMs: 400, ...overrides });

it('bounds the deliveries in flight per host, parks the rest and hands a freed slot to the oldest', async () => {
  const l = limiter();
  expect(await l.acquire('a:1', 'm1', 'j1')).toEqual({ kind: 'ok' });
  expect(await l.acquire('a:1', 'm2', 'j2')).toEqual({ kind: 'ok' });
  // another host is not affected
  expect(await l.acquire('b:1', 'm3', 'j3')).toEqual({ kind: 'ok' });
  expect(await l.acquire('a:1', 'm4', 'j4')).toMatchObject({ kind: 'busy', retryInMs: expect.any(Number) });
  expect(await l.acquire('a:1', 'm5', 'j5')).toMatchObject({ kind: 'busy' });
  expect(await l.release('a:1', 'm1', 'up')).toEqual({ opened: false, wake: 'j4' });
  expect(await l.acquire('a:1', 'm4', 'j4')).toEqual({ kind: 'ok' });
  expect(await l.release('a:1', 'm2', 'up')).toEqual({ opened: false, wake: 'j5' });
  expect(await l.release('a:1', 'm4', 'up')).toEqual({ opened: false });
});

it('a slot whose holder died frees itself when its lease ends', async () => {
  const l = limiter({ maxInFlight: 1, leaseMs: 150 });
  expect(await l.acquire('c:1', 'dead', 'j1')).toEqual({ kind: 'ok' });
  expect((await l.acquire('c:1', 'next', 'j2')).kind).toBe('busy');
  await new Promise((r) => setTimeout(r, 200));
  expect(await l.acquire('c:1', 'next', 'j2')).toEqual({ kind: 'ok' });
});

it('consecutive failures open the circuit; after it, one failed probe opens it again and a success clears it', async () => {
  const l = limiter({ maxInFlight: 10 });
  for (let i = 0; i < 2; i++) {
    await l.acquire('d:1', `m${i}`, `j${i}`);
    expect((await l.release('d:1', `m${i}`, 'trouble')).opened).toBe(false);
  }
  // a 4xx proves the host is up: the count starts over
  await l.acquire('d:1', 'ok', 'jok');
  await l.release('d:1', 'ok', 'up');
  for (let i = 0; i < 2; i++) {
    await l.acquire('d:1', `n${i}`, `k${i}`);
    await l.release('d:1', `n${i}`, 'trouble');
  }
  await l.acquire('d:1', 'n2', 'k2');
  expect((await l.release('d:1', 'n2', 'trouble')).opened).toBe(true);
  expect(await l.acquire('d:1', 'x', 'jx')).toMatchObject({ kind: 'open', retryInMs: expect.any(Number) });
  await new Promise((r) => setTimeout(r, 450));
  expect(await l.acquire('d:1', 'probe', 'jp')).toEqual({ kind: 'ok' });
  expect((await l.release('d:1', 'probe', 'trouble')).opened).toBe(true);
  await new Promise((r) => setTimeout(r, 450));
  await l.acquire('d:1', 'probe2', 'jp2');
  await l.release('d:1', 'probe2', 'up');
  await l.acquire('d:1', 'after', 'ja');
  expect((await l.release('d:1', 'after', 'trouble')).opened).toBe(false);
});
