import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import { keysFor } from '../keys';
import { WebhookSecrets } from './secrets';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-secrets-${randomBytes(4).toString('hex')}`;
const keys = keysFor(prefix);
let redis: Redis;

beforeAll(() => {
  redis = new Redis(url);
});
afterAll(async () => {
  // the tests' own prefix and those derived from it (-other, -lost)
  const found = await redis.keys(`${prefix}*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

it('every process adopts the master secret the first one made; tenants get different secrets', async () => {
  const [a, b] = [new WebhookSecrets(redis, keys), new WebhookSecrets(redis, keys)];
  const [sa, sb] = await Promise.all([a.current('t1'), b.current('t1')]);
  expect(sa).toBe(sb);
  expect(sa).toMatch(/^whsec_/);
  expect(() => new Webhook(sa)).not.toThrow();
  expect(await a.current('t2')).not.toBe(sa);
  expect(await redis.ttl(keys.webhookSecretVersion('t1'))).toBe(-2);
});

it('WEBHOOK_SECRET decides the secrets when set', async () => {
  const configured = new WebhookSecrets(redis, keys, 'a-configured-master-secret');
  expect(await configured.current('t1')).not.toBe(await new WebhookSecrets(redis, keys).current('t1'));
  expect(await new WebhookSecrets(redis, keysFor(`${prefix}-other`), 'a-configured-master-secret').current('t1')).toBe(await configured.current('t1'));
});

it('after a rotation the old secret keeps signing until the overlap ends (Redis time)', async () => {
  const secrets = new WebhookSecrets(redis, keys);
  const before = await secrets.current('t3');
  const after = await secrets.rotate('t3', 1);
  expect(after).not.toBe(before);
  expect(await secrets.current('t3')).toBe(after);
  expect(await secrets.signing('t3')).toEqual([after, before]);
  await new Promise((r) => setTimeout(r, 1100));
  expect(await secrets.signing('t3')).toEqual([after]);
  const pttl = await redis.pttl(keys.webhookSecretRetired('t3'));
  expect(pttl).toBeLessThanOrEqual(0);
});

it('a caching instance forgets a tenant when told of its rotation', async () => {
  const cached = new WebhookSecrets(redis, keys, undefined, 60_000);
  const first = await cached.signing('t4');
  await new WebhookSecrets(redis, keys).rotate('t4');
  expect(await cached.signing('t4')).toEqual(first);
  cached.forget('t4');
  expect(await cached.signing('t4')).toHaveLength(2);
});

it('a master secret Redis lost is put back by the first process that holds it; one made meanwhile is adopted', async () => {
  const k = keysFor(`${prefix}-lost`);
  const holder = new WebhookSecrets(redis, k, undefined, 0, 50);
  const before = await holder.current('t6');
  // Redis loses it (a flush, a failover without persistence)
  await redis.del(k.webhookMasterSecret());
  await new Promise((r) => setTimeout(r, 60));
  expect(await holder.current('t6')).toBe(before);
  expect(await redis.exists(k.webhookMasterSecret())).toBe(1);
  expect(await new WebhookSecrets(redis, k).current('t6')).toBe(before);
  // lost again, and a process that held none made a new one before the holder checked: all adopt it
  await redis.del(k.webhookMasterSecret());
  const made = await new WebhookSecrets(redis, k).current('t6');
  expect(made).not.toBe(before);
  await new Promise((r) => setTimeout(r, 60));
  expect(await holder.current('t6')).toBe(made);
  // a process that cannot reach Redis keeps signing with the one it holds
  const own = new Redis(url, { enableOfflineQueue: false, retryStrategy: () => null });
  await new Promise((resolve) => own.once('ready', resolve));
  const cut = new WebhookSecrets(own, k, undefined, 0, 0);
  const held = await cut.master();
  own.disconnect();
  await expect(cut.master()).resolves.toEqual(held);
});

it('a process that signs nothing still puts a lost master back within its check time', async () => {
  const k = keysFor(`${prefix}-idle`);
  const holder = new WebhookSecrets(redis, k, undefined, 0, 50);
  const before = await holder.current('t7');
  const stop = holder.keepMaster();
  try {
    await redis.del(k.webhookMasterSecret());
    // nothing is signed meanwhile; then a process starts and asks
    await new Promise((r) => setTimeout(r, 150));
    // before: a new master, and every tenant's secret changed
    expect(await new WebhookSecrets(redis, k).current('t7')).toBe(before);
  } finally {
    stop();
  }
});
