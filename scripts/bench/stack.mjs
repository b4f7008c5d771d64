// The product as deployed: the API (its built entry) and a worker (the launcher around the worker
// runtime) in processes of their own, on one Redis, with the HTTP load client in a third process.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnChild, runNode, stopChild, freePort, deletePrefix, uid, ROOT } from './common.mjs';

/**
 * Starts API + worker on `redis`. `worker`: { upstreamMs, upstreamJitter, images: 'noop' | 'sharp', png, env }, or
 * false for the API alone. `dataRoot`: where its DATA_DIR is made (the system's temporary folder).
 * LOG_LEVEL stays at the product's default (info): logging is part of what a generation costs.
 */
export async function startStack(redis, { worker = {}, apiEnv = {}, dataRoot = os.tmpdir() } = {}) {
  const prefix = `bench-${uid()}`;
  const dataDir = await mkdtemp(path.join(dataRoot, 'imagegen-bench-'));
  const port = await freePort();
  const common = { REDIS_URL: redis.url, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, LOG_LEVEL: 'info' };
  const apiStarting = spawnChild(['apps/api/dist/main.js'], {
    env: { ...common, PORT: String(port), HOST: '127.0.0.1', ADMIN_PASSWORD: 'bench', RATE_LIMIT_PER_MINUTE: '100000000', QUOTA_ITEMS_PER_MINUTE: '100000000', QUOTA_MAX_QUEUED: '100000000', ...apiEnv },
    ready: (o) => o.includes('api listening'),
  });
  const startWorker = (w = {}) => {
    const args = [path.join(ROOT, 'scripts/bench/worker-process.mjs'), `--upstream-ms=${w.upstreamMs ?? 0}`, `--upstream-jitter=${w.upstreamJitter ?? 0}`, `--images=${w.images ?? 'sharp'}`, `--png=${w.png ?? 'photo'}`];
    return spawnChild(args, { env: { ...common, ...w.env }, ipc: true });
  };
  // both start at once: each loads its own modules; the worker needs no API to connect
  const [apiProc, firstWorker] = await Promise.all([apiStarting, worker === false ? undefined : startWorker(worker)]);
  let workerProc = firstWorker;
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

const kept = new Map();
/**
 * A stack kept for the rest of the run under `key`, so sections with the same setup share one
 * start-up (seconds of CPU on a small machine); closeKeptStacks() ends them all.
 */
export async function keptStack(redis, key, opts) {
  if (!kept.has(key)) kept.set(key, startStack(redis, opts));
  return kept.get(key);
}
export async function closeKeptStacks() {
  for (const stack of kept.values()) await (await stack).close().catch(() => undefined);
  kept.clear();
}

/** Runs the load client (scripts/bench/load-client.mjs) with `opts`; resolves its figures. */
export async function load(opts) {
  return JSON.parse(await runNode([path.join(ROOT, 'scripts/bench/load-client.mjs'), JSON.stringify(opts)]));
}
