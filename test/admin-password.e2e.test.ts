import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { keysFor } from '@imagegen/shared';
import { killAllSpawned, spawnApi, type ApiProcess } from './support/processes';
import { deleteUnder, plainRedis, REDIS_URL, testPrefix } from './support/redis';

/**
 * Several API processes without ADMIN_PASSWORD agree on one: the first makes it and logs it,
 * the others read it from Redis.
 */

const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

describe('the generated admin password is shared by every API process', () => {
  const prefix = testPrefix('admin');
  let redis: Redis;
  let dataDir: string;
  let apis: ApiProcess[] = [];
  beforeAll(async () => {
    redis = plainRedis();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-admin-'));
  });
  afterAll(async () => {
    await Promise.all(apis.map((a) => a.terminate(10_000)));
    await killAllSpawned();
    await deleteUnder(redis, prefix);
    await redis.quit();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('the password logged by the first opens /admin/queues on the second; a wrong one gets 401', async () => {
    const env = { REDIS_URL, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, ADMIN_USER: 'ops', ADMIN_PASSWORD: '', API_KEYS: '' };
    // both start at once: exactly one makes the password
    apis = await Promise.all([spawnApi({ env, name: 'api-1' }), spawnApi({ env, name: 'api-2' })]);
    const logged = apis.flatMap((a) => a.logs().filter((l) => typeof l.adminPassword === 'string').map((l) => ({ api: a.name, password: l.adminPassword as string })));
    expect(logged).toHaveLength(1);
    const { api: maker, password } = logged[0]!;
    expect(await redis.get(keysFor(prefix).adminPassword())).toBe(password);
    const other = apis.find((a) => a.name !== maker)!;
    expect(other.logs().some((l) => l.msg === 'ADMIN_PASSWORD is not set: using the one kept in Redis')).toBe(true);

    for (const api of [other, ...apis.filter((a) => a !== other)]) {
      const ok = await fetch(`${api.baseUrl}/admin/queues`, { headers: basic('ops', password) });
      expect([api.name, ok.status]).toEqual([api.name, 200]);
      const wrong = await fetch(`${api.baseUrl}/admin/queues`, { headers: basic('ops', `${password}x`) });
      expect([api.name, wrong.status]).toEqual([api.name, 401]);
      expect(wrong.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }

    // a restarted process keeps using it
    await other.terminate(10_000);
    const restarted = await spawnApi({ env, name: 'api-3' });
    apis.push(restarted);
    expect(restarted.logs().some((l) => l.adminPassword !== undefined)).toBe(false);
    expect((await fetch(`${restarted.baseUrl}/admin/queues`, { headers: basic('ops', password) })).status).toBe(200);
  });
});
