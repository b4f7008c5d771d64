import { createRequire } from 'node:module';
import { runConcurrent, timed, uid, generateJob, benchRedis, deletePrefix } from './common.mjs';
const require = createRequire(import.meta.url);
const { Queue } = require('bullmq');
const { Redis } = require('ioredis');
const shared = require('@imagegen/shared');
const apiPkg = require('@imagegen/api');
const redis = await benchRedis();
const prefix = `bench-enq-${uid()}`;
const config = apiPkg.loadApiConfig({ REDIS_URL: redis.url, QUEUE_PREFIX: prefix, DATA_DIR: '/tmp/prof', LOG_LEVEL: 'silent', ADMIN_PASSWORD: 'bench', RATE_LIMIT_PER_MINUTE: '100000000', QUOTA_ITEMS_PER_MINUTE: '100000000', QUOTA_MAX_QUEUED: '100000000' });
const ctx = apiPkg.createApiContext(config, 'bench', shared.createLogger('api', 'silent'));
await ctx.queues.generate.waitUntilReady();
const service = new apiPkg.GenerationsService(ctx);
const input = { style: 'PHOTOGRAPHIC', size: 'LANDSCAPE', priority: 'normal' };
const rawQueue = new Queue('generate', { connection: new Redis(redis.url, { maxRetriesPerRequest: null }), prefix: prefix + 'raw' });
await rawQueue.waitUntilReady();
const n = 3000; const items = Array.from({ length: n }, (_, i) => i);
for (let r = 0; r < 3; r++) {
  const raw = process.env.ONLY ? {ms:1} : await timed(() => runConcurrent(items, 16, (i) => { const job = generateJob(i); return rawQueue.add(job.name, job.data, job.opts); }));
  const ours = await timed(() => runConcurrent(items, 16, (i) => service.create('default', { ...input, topic: `d${i}` })));
  const c0 = process.cpuUsage();
  console.log('raw', (n / raw.ms * 1000).toFixed(0), 'ours', (n / ours.ms * 1000).toFixed(0), 'ratio', (raw.ms / ours.ms).toFixed(2));
}
await rawQueue.close(); await ctx.close();
await deletePrefix(redis.admin, prefix); await deletePrefix(redis.admin, prefix + 'raw');
process.exit(0);
