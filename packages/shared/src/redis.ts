import { Cluster, Redis, type RedisOptions } from 'ioredis';

/**
 * - `worker`: blocking BullMQ connections; commands wait through outages and resume.
 * - `producer`: the API's connection; fails at once while Redis is away so requests get 503, not a hang.
 * - `subscriber`: pub/sub; waits through outages and re-subscribes by itself.
 */
export type RedisRole = 'worker' | 'producer' | 'subscriber';

/**
 * Where Redis is: one server (REDIS_URL), a Cluster (REDIS_CLUSTER_NODES) or a master found
 * through Sentinels (REDIS_SENTINELS); in the last two, credentials and TLS still come from
 * REDIS_URL when it carries them.
 */
export type RedisConnection =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: { host: string; port: number }[]; url: string }
  | { kind: 'sentinel'; sentinels: { host: string; port: number }[]; name: string; url: string };

/** Credentials and TLS of a redis:// or rediss:// URL, for connections that find their hosts elsewhere. */
function urlOptions(url: string): Partial<RedisOptions> {
  const u = new URL(url);
  return {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * A client for `connection` in `role`. A Cluster client is returned under the `Redis` type: it
 * speaks the same command API, and BullMQ and ioredis accept it wherever a Redis is expected.
 */
export function createRedis(connection: RedisConnection, role: RedisRole, name?: string, extra: Partial<RedisOptions> = {}): Redis {
  const options: RedisOptions = {
    connectionName: name,
    // exponential reconnect, capped: a restarted Redis is picked up within ~2 s
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    connectTimeout: 5000,
    // a master demoted by a failover keeps the connection open and answers every write READONLY:
    // connect again, to wherever the address (a managed Redis's endpoint) now leads. The command
    // fails all the same (sent again on its own it would leave a MULTI it was part of), and its
    // caller waits or answers 503 as for any refusal (redisNotServing)
    reconnectOnError: (err) => /^READONLY /.test(err.message),
  };
  if (role === 'producer') {
    // a Redis that is connected but not answering (paused, failing over) must not hang requests either
    Object.assign(options, { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000 });
  } else {
    Object.assign(options, { enableOfflineQueue: true, maxRetriesPerRequest: null });
  }
  let redis: Redis;
  if (connection.kind === 'cluster') {
    const { retryStrategy, enableOfflineQueue, ...nodeOptions } = { ...options, ...extra };
    redis = new Cluster(connection.nodes, {
      clusterRetryStrategy: retryStrategy as (times: number) => number,
      enableOfflineQueue: enableOfflineQueue ?? true,
      redisOptions: { ...nodeOptions, ...urlOptions(connection.url) },
      ...(extra.enableAutoPipelining ? { enableAutoPipelining: true, autoPipeliningIgnoredCommands: extra.autoPipeliningIgnoredCommands ?? [] } : {}),
    }) as unknown as Redis;
  } else if (connection.kind === 'sentinel') {
    // TLS of rediss:// applies to the master the Sentinels name only when this says so (ioredis)
    const tls = new URL(connection.url).protocol === 'rediss:' ? { enableTLSForSentinelMode: true } : {};
    // failoverDetector: moves to a new master as soon as the Sentinels announce it (+switch-master),
    // not when the old one drops the connection, which it does only once told to follow the new
    // one (seconds later): what is written to the old master meanwhile is lost when it resyncs
    redis = new Redis({ ...options, ...extra, ...urlOptions(connection.url), ...tls, sentinels: connection.sentinels, name: connection.name, failoverDetector: true });
  } else {
    redis = new Redis(connection.url, { ...options, ...extra });
  }
  // connection errors surface through status and command failures; an unhandled 'error' would crash
  redis.on('error', () => undefined);
  return redis;
}

/**
 * Redis answering but refusing writes: out of memory under `maxmemory` (OOM), unable to persist
 * (MISCONF), or short of the replicas it must write to (NOREPLICAS). Returns what it said, or
 * undefined for any other failure. Such a refusal lasts until memory is freed (by expiry, the
 * retention sweep or an operator): it is waited out, never counted against a generation.
 */
export function redisWriteRefusal(err: unknown): string | undefined {
  return replyMatching(err, /^(OOM|MISCONF|NOREPLICAS) /);
}

/**
 * Redis answering that it cannot take writes now, for a while: refusing them (redisWriteRefusal),
 * a replica or a master without its replicas (READONLY, MASTERDOWN; a failover under way), loading
 * its data (LOADING), a Cluster slot moving or down (TRYAGAIN, CLUSTERDOWN), or busy with a long
 * script (BUSY). Returns what it said, or undefined for any other failure.
 */
export function redisNotServing(err: unknown): string | undefined {
  return replyMatching(err, /^(OOM|MISCONF|NOREPLICAS|READONLY|MASTERDOWN|LOADING|TRYAGAIN|CLUSTERDOWN|BUSY) /);
}

/**
 * A Cluster client retries CLUSTERDOWN and TRYAGAIN itself and, once its redirections run out,
 * rejects with an error of its own that names Redis's last answer: that answer is what tells.
 */
const CLUSTER_GAVE_UP = /^Too many Cluster redirections\. Last error: (?:ReplyError: )?/;

function replyMatching(err: unknown, pattern: RegExp): string | undefined {
  const message = (err as { message?: unknown } | undefined)?.message;
  if (typeof message !== 'string') return undefined;
  const answer = message.replace(CLUSTER_GAVE_UP, '');
  return pattern.test(answer) ? message : undefined;
}
