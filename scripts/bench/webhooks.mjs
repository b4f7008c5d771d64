// webhooks: deliveries/s from one worker runtime (outbox → dispatcher → signed POST → settled) to a
// keep-alive receiver, next to four bare loops in the same process and run: signed POSTs through
// undici's dispatcher interface over a keep-alive pool (the interface the worker itself sends
// with: the strongest raw path, and the one the target is judged against), the same with undici's
// `request` (its documented fast API), signed `fetch`es (what most code writes), and the dispatch
// loop fed from a Redis stream and acknowledging each event (the least a sender that loses
// nothing when it dies does: what durability itself costs).
// Every side is measured in steady state: the first `warm` deliveries of each run warm the JIT,
// the connections and the receiver, and only the `n` after them count, for rate and CPU alike.
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { CORES, QUICK, REDIS_URL, report, runConcurrent, median, deletePrefix, redisCpuSeconds, uid } from './common.mjs';

const require = createRequire(import.meta.url);
const { Redis } = require('ioredis');
const { Webhook } = require('standardwebhooks');
const { Agent, request } = require('undici');
const shared = require('@imagegen/shared');
const workerPkg = require('@imagegen/worker');

// A receiver in its own process (so it does not share the sender's event loop): answers 200 at
// once over keep-alive; prints the time of its `warm`-th request and of the `warm + n`-th, and the
// CPU it used between them.
const RECEIVER = `
const http = require('node:http');
const [warm, n] = process.argv.slice(1).map(Number);
let seen = 0;
let mark = 0;
let cpu;
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'Content-Length': '0' }).end();
    if (++seen === warm) {
      cpu = process.cpuUsage();
      console.log(JSON.stringify({ mark: (mark = Date.now()) }));
    }
    if (seen === warm + n) {
      const used = process.cpuUsage(cpu);
      console.log(JSON.stringify({ done: Date.now(), mark, cpuMs: (used.user + used.system) / 1000 }));
    }
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
`;

function startReceiver(warm, n) {
  const child = spawn(process.execPath, ['-e', RECEIVER, String(warm), String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  const waiters = [];
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      waiters.shift()?.(line);
    }
  });
  const next = () => new Promise((resolve) => waiters.push(resolve));
  return { ready: next(), mark: next(), done: next(), close: () => child.kill() };
}

/** CPU used from now on by this process and by Redis, per item. */
async function cpuMeter(redis) {
  const start = process.cpuUsage();
  const redisStart = await redisCpuSeconds(redis);
  return {
    async perItem(n) {
      const used = process.cpuUsage(start);
      return { process: (used.user + used.system) / 1000 / n, redis: (((await redisCpuSeconds(redis)) - redisStart) * 1000) / n };
    },
  };
}

/** Rate and CPU per delivery of the `n` deliveries after the receiver's warm-up mark. */
async function measured(receiver, redis, n) {
  await receiver.mark;
  const cpu = await cpuMeter(redis);
  const { done, mark, cpuMs } = await receiver.done;
  const { process: proc, redis: red } = await cpu.perItem(n);
  return { rate: (n / (done - mark)) * 1000, process: proc, redis: red, receiver: cpuMs / n };
}

// a realistic body: a completed generation as its GET returns it
const record = (i, url) => ({
  id: shared.newId('gen'),
  tenant: 'default',
  status: 'active',
  stage: 'storing',
  progress: 85,
  request: { topic: `webhook bench ${i}`, style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' },
  metadata: { order: String(i) },
  priority: 'normal',
  webhook: { url },
  attempts: 1,
  createdAt: new Date().toISOString(),
  fileToken: shared.newFileToken(),
});
const image = (key, size) => ({ key, width: size, height: Math.round(size * 0.57), format: 'webp', bytes: 20000 + size });
const result = (token) => ({
  image: { ...image(`${token}/original.png`, 1344), format: 'png' },
  thumbnails: [1024, 512, 256].map((s) => ({ size: s, ...image(`${token}/thumb-${s}.webp`, s) })),
  placeholder: 'HBkSHYSIeHiPiHh8eJd4eTN0EEQG',
});
const sampleBody = (r) =>
  shared.webhookBody('generation.completed', Date.now(), shared.presentGeneration({ ...r, status: 'completed', stage: 'done', progress: 100, result: result(r.fileToken), completedAt: new Date().toISOString() }, 'http://127.0.0.1:3000'));

/** The Standard Webhooks headers of one message, signed now. */
function signedHeaders(signer, id, body) {
  const now = new Date();
  return { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': signer.sign(id, now, body) };
}

/** A signed POST with undici's request over `agent`, its answer read; throws unless 200. */
async function requestPost(agent, url, signer, id, body) {
  const res = await request(url, { method: 'POST', dispatcher: agent, body, headers: signedHeaders(signer, id, body) });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
}

/**
 * A signed POST through undici's dispatcher interface (what `request` is built on, without its
 * response stream), settled at the status line, the rest of the answer read; rejects unless 200.
 */
function dispatchPost(agent, target, signer, id, body) {
  return new Promise((resolve, reject) => {
    agent.dispatch(
      { origin: target.origin, path: target.pathname, method: 'POST', body, headers: signedHeaders(signer, id, body) },
      {
        onRequestStart() {},
        onResponseStart(_c, status) {
          if (status === 200) resolve();
          else reject(new Error(`status ${status}`));
        },
        onResponseData() {},
        onResponseEnd() {},
        onResponseError(_c, err) {
          reject(err);
        },
      },
    );
  });
}

/** A bare loop: sign each (precomputed) body with standardwebhooks and POST it (kind: dispatch, request or fetch), `concurrency` at once, nothing else. */
async function bareLoop(kind, { warm, n, concurrency, secret, redis }) {
  const receiver = startReceiver(warm, n);
  const { port } = await receiver.ready;
  const url = `http://127.0.0.1:${port}/hook`;
  // fetch() goes through the global dispatcher, which keeps connections alive too
  const agent = kind !== 'fetch' ? new Agent({ connections: concurrency, keepAliveTimeout: 30000 }) : null;
  const signer = new Webhook(secret);
  const target = new URL(url);
  const bodies = Array.from({ length: warm + n }, (_, i) => sampleBody(record(i, '')));
  const figures = measured(receiver, redis, n);
  await runConcurrent(bodies, concurrency, async (body, i) => {
    const id = `msg_${i}`;
    if (kind === 'dispatch') return dispatchPost(agent, target, signer, id, body);
    if (kind === 'request') return requestPost(agent, url, signer, id, body);
    const res = await fetch(url, { method: 'POST', body, headers: signedHeaders(signer, id, body) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`status ${res.status}`);
  });
  const out = await figures;
  await agent?.close();
  receiver.close();
  return out;
}

/**
 * A bare durable loop: the least a sender that loses nothing when it dies can do. The events wait
 * in a Redis stream with their bodies ready; one reader takes them with a consumer group (the
 * next read once no more than a round waits), `concurrency` senders sign and POST them through
 * undici's dispatcher interface, and each answered event is acknowledged and deleted (one XACK + XDEL per turn
 * of the event loop). No delivery log, no host bounds, no retries.
 */
async function bareDurableLoop({ warm, n, concurrency, secret, redis }) {
  const total = warm + n;
  const stream = `bench-hooks-bare-${uid()}:outbox`;
  const reader = new Redis(REDIS_URL);
  const writer = new Redis(REDIS_URL);
  const receiver = startReceiver(warm, n);
  const agent = new Agent({ connections: concurrency, keepAliveTimeout: 30000 });
  try {
    const { port } = await receiver.ready;
    const target = new URL(`http://127.0.0.1:${port}/hook`);
    const signer = new Webhook(secret);
    for (let i = 0; i < total; i += 500) {
      const fill = writer.pipeline();
      for (let j = i; j < Math.min(total, i + 500); j++) fill.xadd(stream, '*', 'id', `msg_${j}`, 'body', sampleBody(record(j, '')));
      await fill.exec();
    }
    await writer.xgroup('CREATE', stream, 'senders', '0');
    const figures = measured(receiver, redis, n);

    let acks = null;
    const ack = (entryId) => {
      if (!acks) {
        acks = [];
        setImmediate(() => {
          const ids = acks;
          acks = null;
          void writer.multi().xack(stream, 'senders', ...ids).xdel(stream, ...ids).exec();
        });
      }
      acks.push(entryId);
    };
    const queue = [];
    const waiters = [];
    let finished = false;
    let room = () => undefined;
    const take = () => {
      if (queue.length) {
        const entry = queue.shift();
        if (queue.length <= concurrency) room();
        return Promise.resolve(entry);
      }
      return finished ? Promise.resolve(null) : new Promise((resolve) => waiters.push(resolve));
    };
    const readAll = async () => {
      for (let read = 0; read < total; ) {
        while (queue.length > concurrency) await new Promise((resolve) => (room = resolve));
        const res = await reader.xreadgroup('GROUP', 'senders', 'bare', 'COUNT', 200, 'BLOCK', 1000, 'STREAMS', stream, '>');
        for (const entry of res?.[0]?.[1] ?? []) {
          const waiter = waiters.shift();
          if (waiter) waiter(entry);
          else queue.push(entry);
          read++;
        }
      }
      finished = true;
      for (const waiter of waiters.splice(0)) waiter(null);
    };
    const send = async () => {
      for (let entry; (entry = await take()) !== null; ) {
        const [entryId, fields] = entry;
        await dispatchPost(agent, target, signer, fields[1], fields[3]);
        ack(entryId);
      }
    };
    await Promise.all([readAll(), ...Array.from({ length: concurrency }, send)]);
    return await figures;
  } finally {
    await agent.close();
    receiver.close();
    await writer.del(stream);
    await Promise.all([reader.quit(), writer.quit()]);
  }
}

/** The product: warm + n events in the outbox (real record transitions), then one worker runtime delivers them all. */
async function product({ warm, n, concurrency, redis }) {
  const prefix = `bench-hooks-${uid()}`;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-bench-'));
  const storeRedis = new Redis(REDIS_URL);
  const receiver = startReceiver(warm, n);
  try {
    const { port } = await receiver.ready;
    const env = { REDIS_URL, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, LOG_LEVEL: 'silent', WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_SECRET: 'bench-master-secret-0123456789', WEBHOOK_CONCURRENCY: String(concurrency), WEBHOOK_MAX_IN_FLIGHT_PER_HOST: String(concurrency) };
    const store = new shared.GenerationStore(storeRedis, shared.keysFor(prefix), 3600);
    const records = Array.from({ length: warm + n }, (_, i) => record(i, `http://127.0.0.1:${port}/hook`));
    await runConcurrent(records, 16, async (r) => {
      await store.create(r);
      await store.complete(r, result(r.fileToken));
    });
    // the worker starts, then dispatches once settled: its start-up is not part of the deliveries
    const settleMs = 1500;
    const config = workerPkg.loadWorkerConfig({ ...env, WEBHOOK_DISPATCH_START_DELAY_MS: String(settleMs) });
    const started = performance.now();
    const runtime = await workerPkg.startWorkerRuntime(config, shared.createLogger('worker', 'silent'));
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, settleMs - 100 - (performance.now() - started))));
    const out = await measured(receiver, redis, n);
    await runtime.close();
    return out;
  } finally {
    receiver.close();
    await storeRedis.quit();
    await deletePrefix(redis, prefix);
    await rm(dataDir, { recursive: true, force: true });
  }
}

export async function benchWebhooks() {
  // the bare request loop is still speeding up after 2,000 deliveries here: quick runs warm up as long as full ones
  const warm = 3000;
  const n = QUICK ? 4000 : 10000;
  const rounds = QUICK ? 1 : 3;
  const concurrency = 50;
  const redis = new Redis(REDIS_URL);
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const runs = { dispatch: [], request: [], fetch: [], durable: [], ours: [] };
  try {
    // interleaved rounds, so a noisy moment of the machine does not fall on one side only
    for (let r = 0; r < rounds; r++) {
      runs.dispatch.push(await bareLoop('dispatch', { warm, n, concurrency, secret, redis }));
      runs.ours.push(await product({ warm, n, concurrency, redis }));
      runs.request.push(await bareLoop('request', { warm, n, concurrency, secret, redis }));
      runs.fetch.push(await bareLoop('fetch', { warm, n, concurrency, secret, redis }));
      runs.durable.push(await bareDurableLoop({ warm, n, concurrency, secret, redis }));
    }
  } finally {
    await redis.quit();
  }
  const med = (side, field) => median(runs[side].map((x) => x[field]));
  const cpu = (side) => med(side, 'process') + med(side, 'redis');
  const ms = (x) => x.toFixed(3);
  const counted = `${n} after ${warm} warm-up, median of ${rounds}`;
  console.log(
    `  webhooks CPU per delivery (ms, sender process + Redis): imagegen ${ms(med('ours', 'process'))} + ${ms(med('ours', 'redis'))}, dispatch loop ${ms(med('dispatch', 'process'))}, request loop ${ms(med('request', 'process'))}, fetch loop ${ms(med('fetch', 'process'))}, durable loop ${ms(med('durable', 'process'))} + ${ms(med('durable', 'redis'))}`,
  );
  report('webhooks', `deliveries/s, 1 worker, ${concurrency} concurrent (outbox → receiver), ${counted}`, med('ours', 'rate'), 'del/s', med('dispatch', 'rate'), '', {
    baselineIs: `bare loop of signed POSTs through undici's dispatcher interface over a keep-alive pool, ${concurrency} at once (the interface the worker sends with)`,
    target: { on: 'ratio', op: '>=', value: 0.8 },
    details: { rounds: runs },
  });
  report('webhooks', "deliveries/s, the same run, next to a bare loop of undici request()s", med('ours', 'rate'), 'del/s', med('request', 'rate'), '', {
    baselineIs: `bare loop of signed POSTs with undici request over a keep-alive pool, ${concurrency} at once`,
  });
  report('webhooks', 'deliveries/s, the same run, next to a bare loop of signed fetch()es', med('ours', 'rate'), 'del/s', med('fetch', 'rate'), '', {
    baselineIs: `bare loop of signed fetch() POSTs (keep-alive), ${concurrency} at once`,
    target: { on: 'value', op: '>=', value: 1000 },
  });
  report('webhooks', 'deliveries/s, the same run, next to a bare durable loop (stream → signed POST → ack)', med('ours', 'rate'), 'del/s', med('durable', 'rate'), '', {
    baselineIs: `bare loop reading a Redis stream of ready bodies with a consumer group, signed POSTs through undici's dispatcher interface (${concurrency} at once), XACK + XDEL per turn: durable, but no delivery log, host bounds or retries`,
  });
  // the sender, Redis and the receiver share this machine's cores: a side's CPU per delivery, all
  // three counted, bounds its rate however its work were spread over threads or processes
  const allCpu = (side) => cpu(side) + med(side, 'receiver');
  const ceiling = (side) => (CORES * 1000) / allCpu(side);
  console.log(
    `  webhooks CPU per delivery, receiver included (ms): imagegen ${ms(allCpu('ours'))} (receiver ${ms(med('ours', 'receiver'))}), dispatch loop ${ms(allCpu('dispatch'))}; most the ${CORES} cores allow: imagegen ${Math.round(ceiling('ours'))}/s, dispatch loop ${Math.round(ceiling('dispatch'))}/s`,
  );
  report('webhooks', `most deliveries/s this machine's ${CORES} cores allow at the CPU per delivery measured (worker + Redis + receiver, any spread over threads), next to the dispatch loop's measured rate`, ceiling('ours'), 'del/s', med('dispatch', 'rate'), '', {
    baselineIs: "the dispatch loop's measured rate: a ratio under 0.8 here means no spreading of the same work reaches 0.8× on this machine; only less CPU per delivery does",
  });
  report('webhooks', `CPU per delivery, sender process + Redis (ours: worker ${ms(med('ours', 'process'))} + Redis ${ms(med('ours', 'redis'))}; dispatch loop ${ms(med('dispatch', 'process'))}; request loop ${ms(med('request', 'process'))}; fetch loop ${ms(med('fetch', 'process'))})`, cpu('ours'), 'ms', cpu('dispatch'), '', {
    baselineIs: 'the dispatch loop above: its process and Redis, over the same counted deliveries',
  });
}
