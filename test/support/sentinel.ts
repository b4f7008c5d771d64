import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort, sleep } from './net';
import { startRedisServer, type RedisServer } from './processes';

export interface RedisSentinel {
  /** `host:port` as REDIS_SENTINELS takes it. */
  sentinels: string;
  name: string;
  master: RedisServer;
  /** With `replica`: a replica of the master, which the Sentinel knows of (a failover promotes it). */
  replica?: RedisServer;
  /** `SENTINEL <args>` on the Sentinel. */
  call(...args: string[]): Promise<unknown>;
  destroy(): Promise<void>;
}

/** A master (and, asked, a replica of it) and one Sentinel watching it (`redis-server --sentinel`), on free ports. */
export async function startRedisSentinel(name = 'imagegen-test', opts: { replica?: boolean } = {}): Promise<RedisSentinel> {
  const master = await startRedisServer();
  const replica = opts.replica ? await startRedisServer({ extraArgs: ['--replicaof', '127.0.0.1', String(master.port)] }) : undefined;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-sentinel-'));
  const port = await freePort();
  const conf = path.join(dir, 'sentinel.conf');
  await writeFile(conf, `port ${port}\nbind 127.0.0.1\nprotected-mode no\ndir ${dir}\nsentinel monitor ${name} 127.0.0.1 ${master.port} 1\n`);
  const proc = spawn(process.env.REDIS_SERVER_BIN ?? 'redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      const addr = (await probe.call('SENTINEL', 'get-master-addr-by-name', name)) as string[] | null;
      // a replica counts once the Sentinel has learnt of it from the master and it has synced
      const replicas = replica ? ((await probe.call('SENTINEL', 'replicas', name)) as string[][]) : [];
      const synced = !replica || replicas.some((fields) => fields.join(' ').includes('master-link-status ok'));
      if (addr && Number(addr[1]) === master.port && synced) break;
    } catch {
      // not up yet
    } finally {
      probe.disconnect();
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error('the Sentinel did not come up (or learn of the replica) within 20 s');
    }
    await sleep(100);
  }
  return {
    sentinels: `127.0.0.1:${port}`,
    name,
    master,
    ...(replica ? { replica } : {}),
    async call(...args: string[]) {
      const client = new Redis({ port, host: '127.0.0.1' });
      try {
        return await client.call('SENTINEL', ...args);
      } finally {
        client.disconnect();
      }
    },
    async destroy() {
      proc.kill('SIGKILL');
      await replica?.destroy();
      await master.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
