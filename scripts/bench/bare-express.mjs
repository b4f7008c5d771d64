// The HTTP baseline for submissions: a bare Express app whose handler parses the JSON body and
// adds the same generate job as the API (name, data, options) with BullMQ, nothing else.
//   REDIS_URL=... QUEUE_PREFIX=... PORT=... node scripts/bench/bare-express.mjs
import { createRequire } from 'node:module';
import { generateJob } from './common.mjs';

const require = createRequire(import.meta.url);
const express = require('express');
const { Queue } = require('bullmq');
const { Redis } = require('ioredis');

const queue = new Queue('generate', { connection: new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: 1 }), prefix: process.env.QUEUE_PREFIX });
await queue.waitUntilReady();
let i = 0;
const app = express();
app.use(express.json());
app.post('/v1/generations', async (req, res) => {
  const job = generateJob(i++);
  job.data.topic = req.body.topic;
  await queue.add(job.name, job.data, job.opts);
  res.status(202).json({ id: job.data.generationId, status: 'queued' });
});
app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('bare express listening'));
