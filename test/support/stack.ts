import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { answerClientErrors, createApiContext, createApp, loadApiConfig, type ApiContext } from '@imagegen/api';
import { loadWorkerConfig, startWorkerRuntime, type WorkerOverrides, type WorkerRuntime } from '@imagegen/worker';
import { createLogger } from '@imagegen/shared';
import type { RedisCluster } from './cluster';
import { freePort } from './net';
import { deleteUnder, plainRedis, REDIS_URL, testPrefix } from './redis';

export interface Stack {
  baseUrl: string;
  prefix: string;
  dataDir: string;
  env: Record<string, string>;
  api: ApiContext;
  worker?: WorkerRuntime;
  redis: Redis;
  /** Connections the API's server holds open now. */
  connections(): Promise<number>;
  /** Cuts every connection the API's server holds open now, as a restart or a network fault would; it keeps listening. */
  dropConnections(): void;
  startWorker(extraEnv?: Record<string, string>, overrides?: WorkerOverrides): Promise<WorkerRuntime>;
  close(): Promise<void>;
}

export const ADMIN = { user: 'ops', password: 'test-admin-password' };
/** The operators' basic-auth header for ADMIN. */
export const ADMIN_AUTH = { Authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}` };

/**
 * A real API on a real port plus (optionally) a real worker, in this process, against
 * real Redis under a prefix of its own. `close()` removes every key and file it made.
 */
export async function startStack(opts: { name: string; env?: Record<string, string>; worker?: boolean; redisUrl?: string; cluster?: RedisCluster }): Promise<Stack> {
  const basePrefix = testPrefix(opts.name);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `imagegen-${opts.name}-`));
  const port = await freePort();
  const redisUrl = opts.redisUrl ?? REDIS_URL;
  const env: Record<string, string> = {
    REDIS_URL: redisUrl,
    ...(opts.cluster ? { REDIS_CLUSTER_NODES: opts.cluster.nodes } : {}),
    QUEUE_PREFIX: basePrefix,
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    DATA_DIR: dataDir,
    ADMIN_USER: ADMIN.user,
    ADMIN_PASSWORD: ADMIN.password,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    GENERATOR_BACKOFF_MS: '50',
    ...opts.env,
  };
  const apiConfig = loadApiConfig(env);
  const api = createApiContext(apiConfig, ADMIN.password, createLogger('api', apiConfig.LOG_LEVEL));
  // what keys are written under: on a Cluster, the prefix as one hash tag
  const prefix = apiConfig.QUEUE_PREFIX;
  const server: Server = await new Promise((resolve) => {
    const s = createApp(api).listen(port, '127.0.0.1', () => resolve(s));
    answerClientErrors(s);
  });
  await api.queues.generate.waitUntilReady();
  const redis = opts.cluster ? opts.cluster.client() : plainRedis(redisUrl);
  const workers: WorkerRuntime[] = [];
  const startWorker = async (extraEnv: Record<string, string> = {}, overrides: WorkerOverrides = {}) => {
    const config = loadWorkerConfig({ ...env, ...extraEnv });
    const runtime = await startWorkerRuntime(config, createLogger('worker', config.LOG_LEVEL), overrides);
    workers.push(runtime);
    return runtime;
  };
  const stack: Stack = {
    baseUrl: `http://127.0.0.1:${port}`,
    prefix,
    dataDir,
    env,
    api,
    redis,
    connections: () => new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
    dropConnections: () => server.closeAllConnections(),
    startWorker,
    async close() {
      try {
        await Promise.all(workers.map((w) => w.close()));
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await api.close();
        await deleteUnder(redis, prefix);
      } finally {
        // a Redis that cannot take the clean-up (a Cluster with a master down) must not keep the
        // client reconnecting, and logging, through the test files run after this one
        await redis.quit().catch(() => redis.disconnect());
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  };
  if (opts.worker !== false) stack.worker = await startWorker();
  return stack;
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? safeJson(text) : undefined };
}

export async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? safeJson(text) : undefined };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
