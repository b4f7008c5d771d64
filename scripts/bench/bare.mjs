// The bare BullMQ baseline process (bare-bullmq.mjs): started on a Redis, runs n jobs on request.
import path from 'node:path';
import { ROOT, spawnChild, stopChild, ask, deletePrefix, uid } from './common.mjs';

export async function startBare(redis) {
  const prefix = `bench-bare-${uid()}`;
  const child = await spawnChild([path.join(ROOT, 'scripts/bench/bare-bullmq.mjs')], { env: { REDIS_URL: redis.url, QUEUE_PREFIX: prefix }, ipc: true });
  return {
    child,
    /** Adds n jobs and waits until the worker has completed them all; resolves ms. */
    run: async (n) => (await ask(child, 'run', { n })).ms,
    async close() {
      await stopChild(child, 'SIGTERM');
      await deletePrefix(redis.admin, prefix);
    },
  };
}
