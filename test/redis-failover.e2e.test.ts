import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { FakeUpstream } from './support/fake-upstream';
import { eventually } from './support/net';
import { killAllSpawned, spawnApi, spawnWorker, startRedisServer, type ApiProcess, type NodeProcess, type RedisServer } from './support/processes';
import { deleteUnder, plainRedis, testPrefix } from './support/redis';
import { getJson, postJson } from './support/stack';
import { TcpProxy } from './support/tcp-proxy';

const log = (msg: string) => process.env.TEST_QUIET !== '1' && process.stdout.write(`[redis-failover] ${msg}\n`);

/**
 * A managed Redis's failover, as its clients see it: one endpoint (a name; here a TCP proxy) in
 * front of a master and its replica. The replica is promoted, the old master made its replica,
 * and the endpoint moved; connections made before stay with the old master, which answers every
 * write READONLY while the connection stays open. The API and the worker connect again, to the
 * new master, and go on: a generation under way completes, new ones are accepted.
 */
describe('a failover behind one Redis endpoint', () => {
  let first: RedisServer;
  let second: RedisServer;
  let proxy: TcpProxy;
  let upstream: FakeUpstream;
  let api: ApiProcess;
  let worker: NodeProcess;
  let dataDir: string;
  const clients: Redis[] = [];
  const prefix = testPrefix('failover');

  beforeAll(async () => {
    [first, second] = await Promise.all([startRedisServer(), startRedisServer()]);
    const replica = plainRedis(second.url);
    clients.push(replica, plainRedis(first.url));
    await replica.replicaof('127.0.0.1', String(first.port));
    await eventually(async () => (/master_link_status:up/.test(await replica.info('replication')) ? true : undefined), 10_000, 50);
    proxy = await TcpProxy.start({ host: '127.0.0.1', port: first.port });
    upstream = await FakeUpstream.start();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-failover-'));
    const env = {
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      QUEUE_PREFIX: prefix,
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      GENERATOR: 'aistudios',
      GENERATOR_URL: upstream.generateUrl,
      GENERATOR_BACKOFF_MS: '200',
      GENERATOR_MAX_ATTEMPTS: '2',
      SHUTDOWN_TIMEOUT_MS: '5000',
    };
    api = await spawnApi({ env, name: 'api' });
    worker = await spawnWorker({ env, name: 'worker' });
  });

  afterAll(async () => {
    await Promise.all([api?.kill(), worker?.kill()]);
    const [replica, master] = clients;
    // whichever is the master now holds the keys
    for (const c of [replica, master]) {
      if (!c) continue;
      await c.replicaof('NO', 'ONE').catch(() => undefined);
      await deleteUnder(c, prefix).catch(() => undefined);
      await c.quit().catch(() => c.disconnect());
    }
    await proxy?.close();
    await upstream?.close();
    await Promise.all([first?.destroy(), second?.destroy()]);
    await killAllSpawned();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('completes a generation under way and takes new ones on the new master', async () => {
    upstream.enqueue({ kind: 'ok', delayMs: 1500 });
    const made = await postJson(`${api.baseUrl}/v1/generations`, { topic: 'under way in a failover' });
    expect(made.status).toBe(202);
    await eventually(async () => (upstream.calls.length > 0 ? true : undefined), 10_000, 10);

    // the failover: the replica becomes the master, the old master its replica, the name moves
    const [promoted, demoted] = clients as [Redis, Redis];
    await promoted.replicaof('NO', 'ONE');
    await demoted.replicaof('127.0.0.1', String(second.port));
    proxy.target = { host: '127.0.0.1', port: second.port };
    const t0 = Date.now();

    const done = await eventually(async () => {
      const g = (await getJson(`${api.baseUrl}/v1/generations/${made.body.id}`)).body;
      return g.status === 'completed' || g.status === 'failed' ? g : undefined;
    }, 30_000, 100);
    expect({ status: done.status, attempts: done.attempts, error: done.error }).toEqual({ status: 'completed', attempts: 1, error: undefined });
    const next = await eventually(async () => {
      const res = await postJson(`${api.baseUrl}/v1/generations`, { topic: 'after the failover' }, { Prefer: 'wait=20' });
      return res.status === 200 ? res : undefined;
    }, 20_000, 200);
    expect(next.body.status).toBe('completed');
    log(`generation under way completed and a new one accepted and completed ${Date.now() - t0} ms after the failover; upstream calls ${upstream.calls.length}`);
    // it is the new master that holds them
    expect(await promoted.exists(`${prefix}:gen:${next.body.id}`)).toBe(1);
  });
});
