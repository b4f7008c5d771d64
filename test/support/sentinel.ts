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
  destroy(): Promise<void>;
}

/** A master and one Sentinel watching it (`redis-server --sentinel`), on free ports. */
export async function startRedisSentinel(name = 'imagegen-test'): Promise<RedisSentinel> {
  const master = await startRedisServer();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-sentinel-'));
  const port = await freePort();
  const conf = path.join(dir, 'sentinel.conf');
  await writeFile(conf, `port ${port}\nbind 127.0.0.1\nprotected-mode no\ndir ${dir}\nsentinel monitor ${name} 127.0.0.1 ${master.port} 1\n`);
  const proc = spawn(process.env.REDIS_SERVER_BIN ?? 'redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      const addr = (await probe.call('SENTINEL', 'get-master-addr-by-name', name)) as string[] | null;
      if (addr && Number(addr[1]) === master.port) break;
    } catch {
      // not up yet
    } finally {
      probe.disconnect();
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error('the Sentinel did not come up within 10 s');
    }
    await sleep(100);
  }
  return {
    sentinels: `127.0.0.1:${port}`,
    name,
    master,
    async destroy() {
      proc.kill('SIGKILL');
      await master.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
