// enqueue: submissions in process (GenerationsService.create) vs a bare BullMQ queue.add of the
// same job, and over HTTP (API process) vs a bare Express app adding that job (its own process).
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { QUICK, ROOT, report, runConcurrent, timed, median, benchRedis, deletePrefix, freePort, spawnChild, stopChild, uid, generateJob } from './common.mjs';
import { startStack, load } from './stack.mjs';

const require = createRequire(import.meta.url);
const { Queue } = require('bullmq');
const { Redis } = require('ioredis');
const shared = require('@imagegen/shared');
const apiPkg = require('@imagegen/api');

export async function benchEnqueue() {
  // a round takes well under a second: several, interleaved, so one noisy moment does not decide
  // the figure (this machine's speed swings several-fold between rounds: the bare add has measured
  // 10,000 to 32,000/s in consecutive rounds)
  const n = QUICK ? 500 : 4000;
  const rounds = QUICK ? 1 : 9;
  const redis = await benchRedis();
  const prefixes = [];
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-bench-'));
  const items = Array.from({ length: n }, (_, i) => i);
  try {
    // in process: the API's context and service, without HTTP
    const prefix = `bench-enq-${uid()}`;
    prefixes.push(prefix);
    const config = apiPkg.loadApiConfig({ REDIS_URL: redis.url, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, LOG_LEVEL: 'silent', ADMIN_PASSWORD: 'bench', RATE_LIMIT_PER_MINUTE: '100000000', QUOTA_ITEMS_PER_MINUTE: '100000000', QUOTA_MAX_QUEUED: '100000000' });
    const ctx = apiPkg.createApiContext(config, 'bench', shared.createLogger('api', 'silent'));
    await ctx.queues.generate.waitUntilReady();
    const service = new apiPkg.GenerationsService(ctx);
    const input = { style: 'PHOTOGRAPHIC', size: 'LANDSCAPE', priority: 'normal' };
    const rawPrefix = `bench-enqraw-${uid()}`;
    prefixes.push(rawPrefix);
    const rawQueue = new Queue('generate', { connection: new Redis(redis.url, { maxRetriesPerRequest: null }), prefix: rawPrefix });
    await rawQueue.waitUntilReady();
    const ours = [];
    const raws = [];
    await runConcurrent(items.slice(0, 100), 16, (i) => service.create('default', { ...input, topic: `warm ${i}` }));
    for (let r = 0; r < rounds; r++) {
      const raw = await timed(() =>
        runConcurrent(items, 16, (i) => {
          const job = generateJob(i);
          return rawQueue.add(job.name, job.data, job.opts);
        }),
      );
      raws.push((n / raw.ms) * 1000);
      const direct = await timed(() => runConcurrent(items, 16, (i) => service.create('default', { ...input, topic: `d${i}` })));
      ours.push((n / direct.ms) * 1000);
    }
    await rawQueue.close();
    await ctx.close();
    report('enqueue', `create + enqueue in process (GenerationsService.create), 16 at once, ${n}, median of ${rounds}`, median(ours), 'gen/s', median(raws), '', {
      baselineIs: 'bare BullMQ queue.add of the same job (name, data, options), 16 at once',
      target: { on: 'ratio', op: '>=', value: 0.6 },
      details: { rounds: ours.map((x, i) => ({ ours: x, raw: raws[i] })) },
    });

    // over HTTP: the API's built entry vs a bare Express app, each in its own process, one load client
    // no worker: it would compete with the API for the CPU; the jobs stay queued and are deleted after
    const stack = await startStack(redis, { worker: false });
    const barePrefix = `bench-enqx-${uid()}`;
    prefixes.push(barePrefix, stack.prefix);
    const port = await freePort();
    const bare = await spawnChild([path.join(ROOT, 'scripts/bench/bare-express.mjs')], { env: { REDIS_URL: redis.url, QUEUE_PREFIX: barePrefix, PORT: String(port) }, ready: (o) => o.includes('bare express listening') });
    try {
      const opts = { n: QUICK ? 300 : n, concurrency: 16, expectStatus: 202 };
      await load({ ...opts, n: 50, url: `${stack.base}/v1/generations` });
      await load({ ...opts, n: 50, url: `http://127.0.0.1:${port}/v1/generations` });
      const http = await load({ ...opts, url: `${stack.base}/v1/generations` });
      const bareHttp = await load({ ...opts, url: `http://127.0.0.1:${port}/v1/generations` });
      report('enqueue', `POST /v1/generations over HTTP, API process, 16 clients in another process (${opts.n})`, http.rate, 'req/s', bareHttp.rate, '', { baselineIs: 'bare Express app (own process), express.json() + the same queue.add' });
      report('enqueue', 'POST /v1/generations latency p50', http.p50, 'ms', bareHttp.p50, '', { baselineIs: 'bare Express app, p50' });
      report('enqueue', 'POST /v1/generations latency p99', http.p99, 'ms', bareHttp.p99, '', { baselineIs: 'bare Express app, p99' });
    } finally {
      await stopChild(bare);
      await stack.close();
    }
  } finally {
    for (const p of prefixes) await deletePrefix(redis.admin, p);
    await rm(dataDir, { recursive: true, force: true });
  }
}
