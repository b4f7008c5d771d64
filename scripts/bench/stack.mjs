// The product as deployed: the API (its built entry) and a worker (the launcher around the worker
// runtime) in processes of their own, on one Redis, with the HTTP load client in a third process.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnChild, runNode, stopChild, freePort, deletePrefix, uid, ROOT } from './common.mjs';

/**
 * Starts API + worker on `redis`. `worker`: { upstreamMs, images: 'noop' | 'sharp', png, env }, or
 * false for the API alone.
 * LOG_LEVEL stays at the product's default (info): logging is part of what a generation costs.
 */
export async function startStack(redis, { worker = {}, apiEnv = {} } = {}) {
  const prefix = `bench-${uid()}`;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-bench-'));
  const port = await freePort();
  const common = { REDIS_URL: redis.url, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, LOG_LEVEL: 'info' };
  const apiProc = await spawnChild(['apps/api/dist/main.js'], {
    env: { ...common, PORT: String(port), HOST: '127.0.0.1', ADMIN_PASSWORD: 'bench', RATE_LIMIT_PER_MINUTE: '100000000', QUOTA_ITEMS_PER_MINUTE: '100000000', QUOTA_MAX_QUEUED: '100000000', ...apiEnv },
    ready: (o) => o.includes('api listening'),
  });
  const startWorker = (w = {}) => {
    const args = [path.join(ROOT, 'scripts/bench/worker-process.mjs'), `--upstream-ms=${w.upstreamMs ?? 0}`, `--images=${w.images ?? 'sharp'}`, `--png=${w.png ?? 'photo'}`];
    return spawnChild(args, { env: { ...common, ...w.env }, ipc: true });
  };
  let workerProc = worker === false ? undefined : await startWorker(worker);
  return {
    prefix,
    dataDir,
    base: `http://127.0.0.1:${port}`,
    api: apiProc,
    get worker() {
      return workerProc;
    },
    /** Starts the worker later (when the stack began without one). */
    async startWorker(w) {
      workerProc = await startWorker(w);
      return workerProc;
    },
    async close() {
      await Promise.all([stopChild(workerProc, 'SIGTERM'), stopChild(apiProc, 'SIGTERM')]);
      await deletePrefix(redis.admin, prefix);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs the load client (scripts/bench/load-client.mjs) with `opts`; resolves its figures. */
export async function load(opts) {
  return JSON.parse(await runNode([path.join(ROOT, 'scripts/bench/load-client.mjs'), JSON.stringify(opts)]));
}
