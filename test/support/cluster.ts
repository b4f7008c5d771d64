import { Cluster, Redis } from 'ioredis';
import { sleep } from './net';
import { startRedisServer, type RedisServer } from './processes';

const SLOTS = 16384;

export interface RedisCluster {
  /** `host:port,...` as REDIS_CLUSTER_NODES takes it. */
  nodes: string;
  servers: RedisServer[];
  client(): Redis;
  destroy(): Promise<void>;
}

/**
 * A local Redis Cluster of `masters` redis-server processes on free ports, the slots split
 * between them (as `redis-cli --cluster create` would, without needing redis-cli).
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const servers: RedisServer[] = [];
  for (let i = 0; i < masters; i++) {
    servers.push(await startRedisServer({ extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${i}.conf`, '--cluster-node-timeout', '5000', '--appendonly', 'no'] }));
  }
  const admins = servers.map((s) => new Redis(s.port, '127.0.0.1'));
  try {
    for (let i = 0; i < masters; i++) {
      const from = Math.floor((SLOTS * i) / masters);
      const to = Math.floor((SLOTS * (i + 1)) / masters) - 1;
      await admins[i]!.call('CLUSTER', 'ADDSLOTSRANGE', String(from), String(to));
    }
    for (let i = 1; i < masters; i++) await admins[0]!.call('CLUSTER', 'MEET', '127.0.0.1', String(servers[i]!.port));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const states = await Promise.all(admins.map(async (a) => /cluster_state:ok/.test(String(await a.call('CLUSTER', 'INFO')))));
      if (states.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error('the local Redis Cluster did not reach cluster_state:ok within 20 s');
      await sleep(100);
    }
  } finally {
    for (const a of admins) a.disconnect();
  }
  const nodes = servers.map((s) => `127.0.0.1:${s.port}`).join(',');
  return {
    nodes,
    servers,
    client: () => new Cluster(servers.map((s) => ({ host: '127.0.0.1', port: s.port })), { redisOptions: { maxRetriesPerRequest: 2 } }) as unknown as Redis,
    async destroy() {
      await Promise.all(servers.map((s) => s.destroy()));
    },
  };
}
