// imagegen benchmark: figures for the hot paths, each next to a raw baseline measured in the
// same run on the same machine, and the product's performance targets with pass/fail. Run with
// `npm run bench` (builds first); `--only=a,b` picks sections, `--quick` runs small ones.
// Writes bench/results.json and prints a table; `npm run bench:readme` puts it into README.md.
//
//   thumbnails: makeThumbnails vs raw sharp decoding once + clone() per size (and vs one decode per size)
//   e2e:        generations/s through API + worker processes vs raw sharp thumbnails, same concurrency
//   sync:       what `Prefer: wait` adds to a generation's upstream and image time, sequential
//   enqueue:    GenerationsService.create vs bare queue.add; POST over HTTP vs a bare Express app
//   inflight:   generations in flight per worker process against a 2 s upstream, throughput, RSS
//   roundtrips: Redis round trips per generation (MONITOR) vs bare BullMQ add → process → complete
//   cpu:        CPU per generation outside the image work (API, worker, Redis) vs bare BullMQ
//   pipeline:   jobs/s through the full worker (in process) vs a raw BullMQ worker doing the same image work
//   waiting:    Prefer: wait woken by pub/sub vs polling GET every 100 ms
//   webhooks:   deliveries/s from one worker (outbox → dispatcher → signed POST → settled) to a
//               keep-alive receiver vs bare loops of signed POSTs (undici request; fetch), same
//               concurrency, in steady state after a warm-up
//   batches:    accepting a 50,000-item batch over HTTP vs a raw BullMQ addBulk of 50,000 jobs,
//               the API's worst event-loop delay meanwhile, and its peak RSS while streaming
//               the 50,000 results to a client (vs idle)
//   scale:      generations/s with 1, 2 and 4 worker processes (built dist) against one private
//               Redis and S3 storage (s3rver), Redis commands and CPU per generation, and what
//               one Redis sustains here (redis-benchmark), so how far one Redis carries
import { createRequire } from 'node:module';
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { QUICK, CORES, REDIS_URL, ROOT, results, report, fmt, pct, timed, runConcurrent, median, rssSampler, deletePrefix, freePort, commandStats, redisCpuSeconds, benchRedis, closeBenchRedis, rawThumbnails, naiveThumbnails, THUMB_SIZES, THUMB_OPTS, noiseImage } from './bench/common.mjs';
import { benchE2e, benchSync } from './bench/e2e.mjs';
import { benchEnqueue } from './bench/enqueue.mjs';
import { benchInflight } from './bench/inflight.mjs';
import { benchRoundtrips } from './bench/roundtrips.mjs';
import { benchCpu } from './bench/cpu.mjs';
import { benchWebhooks } from './bench/webhooks.mjs';
import { closeKeptStacks } from './bench/stack.mjs';
import { machineInfo, writeResults, renderTable, renderTargets } from './bench/output.mjs';

const require = createRequire(import.meta.url);
const sharp = require('sharp');
const { Queue, Worker, QueueEvents } = require('bullmq');
const { Redis } = require('ioredis');
const shared = require('@imagegen/shared');
const workerPkg = require('@imagegen/worker');
const apiPkg = require('@imagegen/api');

// ---------------------------------------------------------------- thumbnails
async function benchThumbnails() {
  const inputs = [
    ['1344×768 PNG (builtin size)', await noiseImage(1344, 768).png().toBuffer()],
    ['4096×2304 JPEG (large upstream)', await noiseImage(4096, 2304).jpeg({ quality: 90 }).toBuffer()],
  ];
  const images = QUICK ? 4 : 8;
  // interleaved runs, medians: one run per side would put a slow moment of the machine on one side only
  const runs = QUICK ? 1 : 5;
  for (const [label, input] of inputs) {
    await workerPkg.makeThumbnails(input, THUMB_OPTS); // warm-up
    await rawThumbnails(input);
    const work = Array.from({ length: images }, (_, i) => i);
    const run = async (fn) => {
      const stop = rssSampler();
      const { ms } = await timed(() => runConcurrent(work, CORES, () => fn(input)));
      return { perSec: (images / ms) * 1000, rss: stop() / 2 ** 20 };
    };
    const make = { ours: (i) => workerPkg.makeThumbnails(i, THUMB_OPTS), raw: (i) => rawThumbnails(i, THUMB_SIZES), naive: (i) => naiveThumbnails(i, THUMB_SIZES) };
    const sides = { ours: [], raw: [], naive: [] };
    for (let r = 0; r < runs; r++) {
      // each side takes each place in the order in turn
      const order = Object.keys(make).map((_, k, all) => all[(k + r) % all.length]);
      for (const side of order) sides[side].push(await run(make[side]));
    }
    const [ours, raw, naive] = ['ours', 'raw', 'naive'].map((side) => ({ perSec: median(sides[side].map((x) => x.perSec)), rss: Math.max(...sides[side].map((x) => x.rss)) }));
    const strongest = 'raw sharp, decode once + clone() per size and for the thumbhash, same outputs';
    report('thumbnails', `${label}: 3 sizes + thumbhash, ${CORES} at once, ${images} images per run, median of ${runs}`, ours.perSec, 'images/s', raw.perSec, '', { baselineIs: strongest, details: { naivePerSec: naive.perSec, runs: sides } });
    report('thumbnails', `${label}: vs a naive raw path`, ours.perSec, 'images/s', naive.perSec, '', { baselineIs: 'raw sharp decoding the original again for every size and the thumbhash' });
    report('thumbnails', `${label}: peak RSS of the bench process (the sides take turns in it)`, ours.rss, 'MiB', raw.rss, '', { baselineIs: strongest });
  }
}

// ---------------------------------------------------------------- helpers for Redis-backed sections
async function startApi(prefix, dataDir, extraEnv = {}) {
  const port = await freePort();
  const env = { REDIS_URL, QUEUE_PREFIX: prefix, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'silent', ADMIN_PASSWORD: 'bench', RATE_LIMIT_PER_MINUTE: '1000000', ...extraEnv };
  const config = apiPkg.loadApiConfig(env);
  const ctx = apiPkg.createApiContext(config, 'bench', shared.createLogger('api', 'silent'));
  const server = await new Promise((resolve, reject) => {
    const s = apiPkg.createApp(ctx).listen(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
  await ctx.queues.generate.waitUntilReady();
  return {
    env,
    ctx,
    base: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await ctx.close();
    },
  };
}

// ---------------------------------------------------------------- pipeline throughput (in process)
function fixedProvider(png, delayMs) {
  return {
    name: 'builtin',
    async generate(_req, ctx) {
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      ctx.signal.throwIfAborted();
      return { kind: 'bytes', data: png, contentType: 'image/png' };
    },
  };
}

async function benchPipeline() {
  const n = QUICK ? 30 : 150;
  const rounds = QUICK ? 1 : 2;
  const png = await sharp(randomBytes(1344 * 768 * 3), { raw: { width: 1344, height: 768, channels: 3 } }).blur(1.2).png().toBuffer();
  const thumbOpts = { sizes: [1024, 512, 256], format: 'webp', quality: 80, maxPixels: 8192 * 8192, placeholder: true };
  const redis = new Redis(REDIS_URL);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-bench-'));
  const prefixes = [];
  const conn = () => new Redis(REDIS_URL, { maxRetriesPerRequest: null });

  // baseline: a raw BullMQ worker doing the same image work and file writes, nothing else
  async function rawRun() {
    const prefix = `bench-rawp-${randomBytes(3).toString('hex')}`;
    prefixes.push(prefix);
    const queue = new Queue('generate', { connection: conn(), prefix });
    const events = new QueueEvents('generate', { connection: conn(), prefix });
    await events.waitUntilReady();
    let done = 0;
    const finished = new Promise((resolve) => events.on('completed', () => ++done === n && resolve()));
    const worker = new Worker(
      'generate',
      async (job) => {
        const dir = path.join(dataDir, prefix, job.id);
        await mkdir(dir, { recursive: true });
        await writeFile(path.join(dir, 'original.png'), png);
        const { thumbnails } = await workerPkg.makeThumbnails(png, thumbOpts);
        for (const t of thumbnails) await writeFile(path.join(dir, `thumb-${t.size}.webp`), t.data);
        return true;
      },
      { connection: conn(), prefix, concurrency: 32, autorun: false },
    );
    await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'generate', data: { i } })));
    const { ms } = await timed(async () => {
      void worker.run();
      await finished;
    });
    await Promise.all([worker.close(), events.close(), queue.close()]);
    return (n / ms) * 1000;
  }

  // ours: the API creates the generations, the full worker runs them (records, stages, checkpoints, files)
  async function oursRun() {
    const prefix = `bench-pipe-${randomBytes(3).toString('hex')}`;
    prefixes.push(prefix);
    const api = await startApi(prefix, dataDir);
    const ids = [];
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${api.base}/v1/generations`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ topic: `p${i}` }) });
      ids.push((await res.json()).id);
    }
    const config = workerPkg.loadWorkerConfig({ ...api.env, WORKER_CONCURRENCY: '32', ...(process.env.BENCH_CPU ? { CPU_CONCURRENCY: process.env.BENCH_CPU } : {}) });
    const events = new QueueEvents('generate', { connection: conn(), prefix });
    await events.waitUntilReady();
    let done = 0;
    const finished = new Promise((resolve) => events.on('completed', () => ++done === n && resolve()));
    const { ms } = await timed(async () => {
      const runtime = await workerPkg.startWorkerRuntime(config, shared.createLogger('worker', 'silent'), { provider: fixedProvider(png, 0) });
      await finished;
      await runtime.close();
    });
    await events.close();
    const last = await api.ctx.store.get(ids[n - 1]);
    if (last?.status !== 'completed') throw new Error(`last generation is ${last?.status}`);
    await api.close();
    return (n / ms) * 1000;
  }

  try {
    let raw = 0;
    let ours = 0;
    for (let r = 0; r < rounds; r++) {
      raw = Math.max(raw, await rawRun());
      ours = Math.max(ours, await oursRun());
    }
    report('pipeline', `generations/s, 1 worker, 32 concurrent, ${n} jobs, best of ${rounds}`, ours, 'jobs/s', raw, 'baseline: raw BullMQ worker, same image work and writes');
  } finally {
    for (const p of prefixes) await deletePrefix(redis, p);
    await redis.quit();
    await rm(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- 4. waiting
async function benchWaiting() {
  const n = QUICK ? 10 : 30;
  const delayMs = 200;
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#369' } }).png().toBuffer();
  const redis = new Redis(REDIS_URL);
  const prefix = `bench-wait-${randomBytes(3).toString('hex')}`;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-bench-'));
  try {
    const api = await startApi(prefix, dataDir);
    const config = workerPkg.loadWorkerConfig({ ...api.env, THUMBNAIL_SIZES: '32' });
    const runtime = await workerPkg.startWorkerRuntime(config, shared.createLogger('worker', 'silent'), { provider: fixedProvider(png, delayMs) });
    const post = (headers = {}) =>
      fetch(`${api.base}/v1/generations`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify({ topic: 'wait' }) }).then((r) => r.json());
    const overWait = [];
    const overPoll = [];
    for (let i = 0; i < n; i++) {
      let t0 = performance.now();
      const g = await post({ Prefer: 'wait=30' });
      const t1 = performance.now();
      if (g.status !== 'completed') throw new Error('wait did not complete');
      overWait.push(t1 - t0 - (Date.parse(g.completedAt) - Date.parse(g.createdAt)));

      t0 = performance.now();
      const created = await post();
      let final;
      for (;;) {
        final = await fetch(`${api.base}/v1/generations/${created.id}`).then((r) => r.json());
        if (final.status === 'completed') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      overPoll.push(performance.now() - t0 - (Date.parse(final.completedAt) - Date.parse(final.createdAt)));
    }
    await runtime.close();
    await api.close();
    report('waiting', `answer after completion, Prefer: wait (pub/sub), p50 of ${n}`, pct(overWait, 50), 'ms', pct(overPoll, 50), 'baseline: client polling GET every 100 ms');
    report('waiting', 'answer after completion, Prefer: wait, p99', pct(overWait, 99), 'ms', pct(overPoll, 99), 'baseline: polling, p99');
  } finally {
    await deletePrefix(redis, prefix);
    await redis.quit();
    await rm(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- 5. webhooks: scripts/bench/webhooks.mjs

// ---------------------------------------------------------------- 6. batches
const BATCH_CLIENT = `
import { readFile } from 'node:fs/promises';
const [mode, url, file, type] = process.argv.slice(1);
const t0 = performance.now();
if (mode === 'post') {
  const body = await readFile(file);
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': type }, body });
  const json = await res.json();
  if (res.status !== 202) { console.error('status ' + res.status + ' ' + JSON.stringify(json)); process.exit(1); }
  console.log(JSON.stringify({ ms: performance.now() - t0, id: json.id }));
} else {
  const res = await fetch(url);
  let lines = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    for (const b of value) if (b === 10) lines++;
  }
  console.log(JSON.stringify({ ms: performance.now() - t0, lines }));
}
`;

function batchClient(...args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', BATCH_CLIENT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`batch client exited ${code}`))));
  });
}

async function benchBatches() {
  const n = QUICK ? 10_000 : 50_000;
  const redis = new Redis(REDIS_URL);
  const rawPrefix = `bench-rawbatch-${randomBytes(3).toString('hex')}`;
  const prefix = `bench-batch-${randomBytes(3).toString('hex')}`;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-bench-'));
  try {
    const rawQueue = new Queue('generate', { connection: new Redis(REDIS_URL, { maxRetriesPerRequest: null }), prefix: rawPrefix });
    await rawQueue.waitUntilReady();
    const jobs = Array.from({ length: n }, (_, i) => ({ name: 'generate', data: { generationId: `gen_${i}`, tenant: 'default' }, opts: { jobId: `gen_${i}`, priority: 50 } }));
    const raw = await timed(() => rawQueue.addBulk(jobs));
    await rawQueue.close();

    const api = await startApi(prefix, dataDir);
    const file = path.join(dataDir, 'batch.json');
    await writeFile(file, JSON.stringify({ items: Array.from({ length: n }, (_, i) => ({ topic: `a watercolour lighthouse at dusk, variation ${i}`, metadata: { row: i } })) }));
    const ndFile = path.join(dataDir, 'batch.ndjson');
    await writeFile(ndFile, Array.from({ length: n }, (_, i) => JSON.stringify({ topic: `a watercolour lighthouse at dusk, variation ${i}`, metadata: { row: i } })).join('\n'));
    let accepted;
    for (const [label, body, type] of [['JSON', file, 'application/json'], ['NDJSON', ndFile, 'application/x-ndjson']]) {
      const delay = monitorEventLoopDelay({ resolution: 10 });
      delay.enable();
      const one = await batchClient('post', `${api.base}/v1/batches`, body, type);
      delay.disable();
      accepted ??= one;
      report('batches', `accept a ${n}-item batch over HTTP (${label})`, one.ms, 'ms', raw.ms, `baseline: raw BullMQ addBulk of ${n} jobs`);
      report('batches', `API worst event-loop delay while accepting it (${label})`, delay.max / 1e6, 'ms', undefined, 'target ≤ 200 ms');
    }

    // collect what accepting left behind, so idle means idle
    v8.setFlagsFromString('--expose-gc');
    runInNewContext('gc')();
    await new Promise((r) => setTimeout(r, 500));
    const idle = process.memoryUsage().rss;
    const peak = rssSampler();
    const streamed = await batchClient('get', `${api.base}/v1/batches/${accepted.id}/results`);
    const peakRss = peak();
    if (streamed.lines !== n) throw new Error(`results had ${streamed.lines} lines, expected ${n}`);
    report('batches', `stream results of ${n} items`, streamed.ms, 'ms');
    report('batches', 'API peak RSS above idle while streaming them', (peakRss - idle) / 1024 / 1024, 'MB', undefined, `idle ${fmt(idle / 1024 / 1024)} MB; target ≤ 50 MB`);
    await api.close();
  } finally {
    await deletePrefix(redis, rawPrefix);
    await deletePrefix(redis, prefix);
    await redis.quit();
    await rm(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- 7. scale
/** A child process that resolves once `ready(output)` holds; killed with the process group on exit. */
function spawnUntil(cmd, args, env, ready, timeoutMs = 60_000) {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const collect = (d) => (out += d);
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  process.once('exit', () => child.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.at(-1)} not ready:\n${out.slice(-2000)}`)), timeoutMs);
    const check = async () => {
      if (await ready(out)) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        resolve(child);
      }
    };
    const onData = () => void check();
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.at(-1)} exited ${code}:\n${out.slice(-2000)}`)));
    void check();
  });
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

/** Commands/s one Redis answers here: redis-benchmark's simple commands (50 clients, no pipelining), else a pipelined loop. */
async function redisCapacity(port) {
  const tests = 'set,get,incr,lpush,zadd,hset';
  const bench = await new Promise((resolve) => {
    const child = spawn('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-q', '-n', QUICK ? '10000' : '50000', '-c', '50', '-t', tests, '--csv'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', () => resolve(undefined));
    child.on('exit', (code) => resolve(code === 0 ? out : undefined));
  });
  if (bench) {
    const rates = bench
      .split('\n')
      .map((l) => l.split(',').map((c) => c.replace(/"/g, '')))
      .filter((c) => c.length > 1 && Number.isFinite(Number(c[1])))
      .map((c) => Number(c[1]));
    if (rates.length) return { perSec: rates.reduce((a, b) => a + b, 0) / rates.length, how: `redis-benchmark, ${tests}, 50 clients, mean` };
  }
  const redis = new Redis({ port, host: '127.0.0.1' });
  const n = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i += 1000) {
    const p = redis.pipeline();
    for (let j = 0; j < 1000; j++) p.set(`cap:${j}`, 'x');
    await p.exec();
  }
  const perSec = (n / (performance.now() - t0)) * 1000;
  await redis.quit();
  return { perSec, how: 'pipelined SET loop (redis-benchmark not installed)' };
}

/** The seed's protocol, fixed answer: a URL to one image of the size providers return. */
async function fixedUpstream(png) {
  const http = await import('node:http');
  let calls = 0;
  const server = http.createServer((req, res) => {
    if (req.method === 'POST') {
      calls++;
      req.resume();
      req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ downloadUrl: `http://127.0.0.1:${server.address().port}/img.png` })));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': png.length }).end(png);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/generate`, calls: () => calls, close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))) };
}

async function benchScale() {
  const n = QUICK ? 16 : 80;
  // quick: a reduced form, up to 2 worker processes
  const counts = QUICK ? [1, 2] : [1, 2, 4];
  const png = await sharp(randomBytes(1344 * 768 * 3), { raw: { width: 1344, height: 768, channels: 3 } }).blur(1.2).png().toBuffer();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-bench-scale-'));
  const children = [];
  // a Redis of its own: commandstats and CPU count this workload alone
  const redisPort = await freePort();
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  children.push(await spawnUntil('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {}, (o) => /Ready to accept/.test(o)));
  const s3Port = await freePort();
  const bucket = 'bench';
  const s3Bin = path.join(path.dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  await mkdir(path.join(dir, 's3'));
  // s3rver seals list tokens with DES, which OpenSSL 3 keeps in its legacy provider
  children.push(
    await spawnUntil(process.execPath, ['--openssl-legacy-provider', s3Bin, '-d', path.join(dir, 's3'), '-a', '127.0.0.1', '-p', String(s3Port), '--configure-bucket', bucket, '--silent', '--no-vhost-buckets'], {}, () =>
      fetch(`http://127.0.0.1:${s3Port}/${bucket}?list-type=2&max-keys=1`).then((r) => r.status < 500, () => false),
    ),
  );
  const upstream = await fixedUpstream(png);
  const s3Env = { STORAGE: 's3', S3_BUCKET: bucket, S3_ENDPOINT: `http://127.0.0.1:${s3Port}`, S3_FORCE_PATH_STYLE: 'true', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  const admin = new Redis(redisUrl);
  // the API made here holds an S3 client too; the SDK's notice about Node 20 is noise in a report
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  let perGen;
  try {
    // one run: `workers` processes take `n` generations queued beforehand; Redis counted meanwhile
    const run = async (workers, storage) => {
      const prefix = `bench-scale-${workers}-${randomBytes(3).toString('hex')}`;
      const storageEnv = storage === 's3' ? s3Env : { STORAGE: 'fs' };
      const api = await startApi(prefix, dir, { REDIS_URL: redisUrl, ...storageEnv });
      const service = new apiPkg.GenerationsService(api.ctx);
      await api.ctx.queues.generate.pause();
      await runConcurrent(Array.from({ length: n }, (_, i) => i), 16, (i) => service.create('default', { topic: `scale ${i}`, style: 'PHOTOGRAPHIC', size: 'LANDSCAPE', priority: 'normal' }));
      const workerEnv = { ...api.env, ...storageEnv, LOG_LEVEL: 'info', GENERATOR: 'aistudios', GENERATOR_URL: upstream.url, WORKER_CONCURRENCY: '32' };
      const procs = await Promise.all(Array.from({ length: workers }, () => spawnUntil(process.execPath, ['apps/worker/dist/main.js'], workerEnv, (o) => o.includes('"worker started"'))));
      const completedKey = shared.keysFor(prefix).tenantGenerations('default', 'completed');
      const [stats0, cpu0] = [await commandStats(admin), await redisCpuSeconds(admin)];
      const t0 = performance.now();
      await api.ctx.queues.generate.resume();
      let polls = 0;
      while ((await admin.zcard(completedKey)) < n) {
        polls++;
        await new Promise((r) => setTimeout(r, 50));
      }
      const ms = performance.now() - t0;
      const [stats1, cpu1] = [await commandStats(admin), await redisCpuSeconds(admin)];
      await Promise.all(procs.map(stopChild));
      await api.close();
      let calls = 0;
      const byName = [];
      for (const [name, st] of Object.entries(stats1)) {
        const d = st.calls - (stats0[name]?.calls ?? 0);
        calls += d;
        byName.push([name, d]);
      }
      // less this loop's own polling and the two INFO pairs
      calls -= polls + 1 + 4;
      byName.find((e) => e[0] === 'zcard')[1] -= polls + 1;
      const top = byName.sort((a, b) => b[1] - a[1]).slice(0, 6).map(([name, d]) => `${name} ${fmt(d / n)}`).join(', ');
      await deletePrefix(admin, prefix);
      return { perSec: (n / ms) * 1000, calls: calls / n, cpuMs: ((cpu1 - cpu0) * 1000) / n, top };
    };
    const label = (workers) => `generations/s, ${workers} worker process${workers > 1 ? 'es' : ''} (STORAGE=s3, ${n} × 1344×768 PNG, 3 thumbnails)`;
    const onDisk = await run(1, 'fs');
    for (const workers of counts) {
      const r = await run(workers, 's3');
      report('scale', label(workers), r.perSec, 'gen/s', onDisk.perSec, `baseline: 1 worker process, STORAGE=fs; ${CORES} cores shared with s3rver and Redis`);
      perGen ??= r;
    }
    const capacity = await redisCapacity(redisPort);
    report('scale', 'Redis commands per generation (INFO commandstats, 1 worker)', perGen.calls, 'cmds', undefined, `most: ${perGen.top}`);
    report('scale', 'Redis CPU per generation (used_cpu_user+sys, 1 worker)', perGen.cpuMs, 'ms');
    report('scale', `commands/s one Redis answers here (${capacity.how})`, capacity.perSec, 'cmds/s');
    report('scale', 'generations/s one Redis carries: commands/s ÷ commands per generation', capacity.perSec / perGen.calls, 'gen/s');
    report('scale', 'generations/s one Redis core carries: 1 s ÷ Redis CPU per generation', 1000 / perGen.cpuMs, 'gen/s');
  } finally {
    await admin.quit();
    await upstream.close();
    for (const c of children.reverse()) await stopChild(c);
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- main
const sections = { thumbnails: benchThumbnails, e2e: benchE2e, sync: benchSync, enqueue: benchEnqueue, inflight: benchInflight, roundtrips: benchRoundtrips, cpu: benchCpu, pipeline: benchPipeline, waiting: benchWaiting, webhooks: benchWebhooks, batches: benchBatches, scale: benchScale };
// the scale section's child processes each hook process exit
process.setMaxListeners(50);
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
const unknown = only?.filter((name) => !(name in sections));
if (unknown?.length) {
  console.error(`unknown section(s): ${unknown.join(', ')}; sections: ${Object.keys(sections).join(', ')}`);
  process.exit(2);
}
// a partial run must not replace the full results the README is made from
const outFile = path.resolve(ROOT, process.argv.find((a) => a.startsWith('--out='))?.slice(6) ?? (only ? 'bench/results-partial.json' : 'bench/results.json'));
console.log(`imagegen bench — node ${process.version}, ${CORES} cores, sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips}), UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4}${QUICK ? ', quick' : ''}`);
const redisVersion = (await benchRedis()).version;
const started = performance.now();
const ran = [];
// sections that share one API + worker stack (started once, closed when the next section is not of the group)
const STACK_GROUP = { e2e: 'sharp', sync: 'sharp', roundtrips: 'noop', cpu: 'noop' };
const toRun = Object.entries(sections).filter(([name]) => !only || only.includes(name));
for (const [k, [name, fn]] of toRun.entries()) {
  const t0 = performance.now();
  try {
    await fn();
  } catch (err) {
    await closeKeptStacks();
    await closeBenchRedis();
    throw err;
  }
  ran.push(name);
  if (!STACK_GROUP[name] || STACK_GROUP[name] !== STACK_GROUP[toRun[k + 1]?.[0]]) await closeKeptStacks();
  console.log(`  ${name} done in ${fmt((performance.now() - t0) / 1000)} s`);
}
await closeKeptStacks();
await closeBenchRedis();
const machine = machineInfo({ quick: QUICK, redisVersion, sections: ran, durationS: (performance.now() - started) / 1000 });
await writeResults(outFile, machine, results);
console.log(`\n${renderTable(results)}\n\nTargets:\n${renderTargets(results)}\n\n${results.length} figures in ${path.relative(ROOT, outFile)}, ${machine.durationS} s`);
process.exit(0);
