// The bare BullMQ baseline for Redis round trips and CPU: one process adds n generate jobs (the
// API's name, data and options), 16 at once, and a Worker in the same process completes each at
// once (concurrency 32, as WORKER_CONCURRENCY). IPC: { ready } when connected; { type: 'run', n }
// runs and answers { reply: 'run', ms }.
import { createRequire } from 'node:module';
import { generateJob, runConcurrent } from './common.mjs';

const require = createRequire(import.meta.url);
const { Queue, Worker } = require('bullmq');
const { Redis } = require('ioredis');

const conn = () => new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: null });
const prefix = process.env.QUEUE_PREFIX;
const queue = new Queue('generate', { connection: conn(), prefix });
let done = 0;
let target = Infinity;
let finished;
const worker = new Worker('generate', async () => true, { connection: conn(), prefix, concurrency: 32 });
worker.on('completed', () => ++done === target && finished());
await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()]);

process.on('message', async (m) => {
  if (m?.type !== 'run') return;
  const t0 = performance.now();
  done = 0;
  target = m.n;
  const all = new Promise((r) => (finished = r));
  await runConcurrent(Array.from({ length: m.n }, (_, i) => i), 16, (i) => {
    const job = generateJob(i);
    return queue.add(job.name, job.data, job.opts);
  });
  await all;
  process.send({ reply: 'run', ms: performance.now() - t0 });
});
process.once('SIGTERM', () => Promise.all([worker.close(), queue.close()]).then(() => process.exit(0)));
process.send({ ready: true });
