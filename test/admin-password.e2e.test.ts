import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { keysFor } from '@imagegen/shared';
import { killAllSpawned, spawnApi, startRedisServer, type ApiProcess } from './support/processes';
import { eventually, freePort } from './support/net';
import { deleteUnder, plainRedis, REDIS_URL, testPrefix } from './support/redis';

/**
 * Several API processes without ADMIN_PASSWORD agree on one: the first makes it and logs it (as
 * the contract says: unset, a random password is made and logged at start), the others read it
 * from Redis.
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

  it('the password made and logged by the first opens /admin/queues on the second; a wrong one gets 401', async () => {
    const env = { REDIS_URL, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, ADMIN_USER: 'ops', ADMIN_PASSWORD: '', API_KEYS: '' };
    // both start at once: exactly one makes the password
    apis = await Promise.all([spawnApi({ env, name: 'api-1' }), spawnApi({ env, name: 'api-2' })]);
    // each serves at once and learns the password just after
    const learnt = (a: ApiProcess) => a.waitForLog((l) => /^ADMIN_PASSWORD is not set/.test(l.msg));
    await Promise.all(apis.map(learnt));
    const makers = apis.filter((a) => a.logs().some((l) => /^ADMIN_PASSWORD is not set: generated one/.test(l.msg)));
    expect(makers).toHaveLength(1);
    const maker = makers[0]!.name;
    const password = (await redis.get(keysFor(prefix).adminPassword())) as string;
    expect(password.length).toBeGreaterThanOrEqual(20);
    // the maker's log line carries it: an operator reads it there, as from npm start's banner
    const announced = makers[0]!.logs().find((l) => /^ADMIN_PASSWORD is not set: generated one/.test(l.msg))!;
    expect(announced.msg).toContain(`user ops, password ${password},`);
    const other = apis.find((a) => a.name !== maker)!;
    expect(JSON.stringify(other.logs())).not.toContain(password);
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
    await learnt(restarted);
    expect(restarted.logs().some((l) => /generated one/.test(l.msg))).toBe(false);
    expect((await fetch(`${restarted.baseUrl}/admin/queues`, { headers: basic('ops', password) })).status).toBe(200);
  });

  it('an API started while Redis is away serves at once: alive, not ready, admin 503 until Redis answers', async () => {
    const port = await freePort();
    const env = { REDIS_URL: `redis://127.0.0.1:${port}`, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, ADMIN_USER: 'ops', ADMIN_PASSWORD: '', API_KEYS: '' };
    const api = await spawnApi({ env, name: 'api-no-redis' });
    apis.push(api);
    const problem = async (url: string, init?: RequestInit) => {
      const res = await fetch(url, init);
      return { status: res.status, type: res.headers.get('content-type'), retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { status: number; detail: string } };
    };
    expect((await fetch(`${api.baseUrl}/healthz`)).status).toBe(200);
    const ready = await problem(`${api.baseUrl}/readyz`);
    expect(ready).toMatchObject({ status: 503, body: { status: 503 } });
    expect(ready.type).toMatch(/^application\/problem\+json/);
    const adminPage = await problem(`${api.baseUrl}/admin/queues`, { headers: basic('ops', 'anything') });
    expect(adminPage).toMatchObject({ status: 503, retryAfter: '5', body: { detail: expect.stringMatching(/admin password is kept in Redis/) } });
    expect(adminPage.type).toMatch(/^application\/problem\+json/);
    expect((await problem(`${api.baseUrl}/v1/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"topic":"x"}' })).status).toBe(503);

    // Redis comes: the password is made, logged, and opens the dashboard
    const server = await startRedisServer({ port });
    try {
      const announced = await api.waitForLog((l) => /^ADMIN_PASSWORD is not set: generated one/.test(l.msg), 20_000);
      const there = plainRedis(`redis://127.0.0.1:${port}`);
      const password = (await there.get(keysFor(prefix).adminPassword())) as string;
      there.disconnect();
      expect(announced.msg).toContain(`password ${password},`);
      await eventually(async () => ((await fetch(`${api.baseUrl}/readyz`)).status === 200 ? true : undefined), 15_000);
      expect((await fetch(`${api.baseUrl}/admin/queues`, { headers: basic('ops', password) })).status).toBe(200);
      expect((await fetch(`${api.baseUrl}/admin/queues`, { headers: basic('ops', `${password}x`) })).status).toBe(401);
      await api.terminate(10_000);
    } finally {
      await server.destroy();
    }
  });
});
