// e2e: generations/s through API + worker processes vs raw sharp doing the same thumbnails.
// sync: what `Prefer: wait` adds to a generation's own work, one request at a time.
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { QUICK, report, runConcurrent, median, pct, fmt, benchRedis, noisePng, rawThumbnails, timed } from './common.mjs';
import { keptStack, load } from './stack.mjs';

const require = createRequire(import.meta.url);
const workerPkg = require('@imagegen/worker');

/** The worker's CPU_CONCURRENCY as its config module resolves it here (the default: the core count). */
const cpuConcurrency = (redisUrl) => workerPkg.loadWorkerConfig({ REDIS_URL: redisUrl }).CPU_CONCURRENCY;

/** Raw sharp: `n` images, `concurrency` at once, in this process; images/s. */
async function rawRate(png, n, concurrency) {
  const { ms } = await timed(() => runConcurrent(Array.from({ length: n }, (_, i) => i), concurrency, () => rawThumbnails(png)));
  return (n / ms) * 1000;
}

export async function benchE2e() {
  const n = QUICK ? 30 : 200;
  const rounds = QUICK ? 1 : 3;
  const redis = await benchRedis();
  const png = await noisePng();
  const cpu = cpuConcurrency(redis.url);
  await rawRate(png, cpu * 2, cpu); // warm-up: sharp's first calls load codecs
  const stack = await keptStack(redis, 'sharp', { worker: { images: 'sharp', png: 'photo' } });
  {
    // every generation submitted with Prefer: wait, 64 open at once (the worker runs 32): the last
    // response is the last completion, and the load client's clock runs from the first POST
    const opts = { url: `${stack.base}/v1/generations`, concurrency: 64, headers: { Prefer: 'wait=60' }, expectStatus: 200, expectCompleted: true, topic: 'e2e' };
    await load({ ...opts, n: cpu * 4 }); // warm-up: JIT, connections, first sharp calls in the worker
    const raws = [];
    const ours = [];
    // interleaved, so drift in the machine's load touches both sides alike
    for (let r = 0; r < rounds; r++) {
      raws.push(await rawRate(png, n, cpu));
      ours.push((await load({ ...opts, n })).rate);
    }
    const [o, b] = [median(ours), median(raws)];
    report('e2e', `generations/s, API + worker processes, instant upstream, 1344×768 PNG, ${n} per round, median of ${rounds}`, o, 'gen/s', b, '', {
      baselineIs: `raw sharp in one process, ${cpu} images at once (CPU_CONCURRENCY): decode once + clone() per size, webp q80 effort 4 at 1024/512/256 + thumbhash`,
      target: { on: 'ratio', op: '>=', value: 0.85 },
      details: { rounds: ours.map((x, i) => ({ ours: x, raw: raws[i] })), cpuConcurrency: cpu, workerConcurrency: 32, clientsAtOnce: 64 },
    });
  }
}

export async function benchSync() {
  const n = QUICK ? 15 : 30;
  const redis = await benchRedis();
  const png = await noisePng();
  const stack = await keptStack(redis, 'sharp', { worker: { images: 'sharp', png: 'photo' } });
  {
    const opts = { url: `${stack.base}/v1/generations`, concurrency: 1, headers: { Prefer: 'wait=60' }, expectStatus: 200, expectCompleted: true, topic: 'sync' };
    await load({ ...opts, n: 3 }); // warm-up
    // the same image work, sequential, in this process: what a generation cannot do without;
    // in rounds that alternate with the requests, so both sides see the machine as it is then
    for (let i = 0; i < 3; i++) await rawThumbnails(png);
    const rounds = 5;
    const raw = [];
    const lat = [];
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < n / rounds; i++) {
        const t0 = performance.now();
        await rawThumbnails(png);
        raw.push(performance.now() - t0);
      }
      lat.push(...(await load({ ...opts, n: n / rounds })).latencies);
    }
    const latencies = { p50: median(lat), p99: pct(lat, 99) };
    const rawMs = median(raw);
    const upstreamMs = 0; // the in-process upstream answers at once
    report('sync', `POST /v1/generations with Prefer: wait=60, sequential, overhead at p50 (${n} requests)`, latencies.p50 - upstreamMs - rawMs, 'ms', undefined, `p50 latency ${fmt(latencies.p50)} ms − upstream ${upstreamMs} ms − raw processing ${fmt(rawMs)} ms (median of ${n} sequential raw sharp runs, decode once + clone(), in rounds alternating with the requests)`, {
      target: { on: 'value', op: '<=', value: 15 },
      details: { p50LatencyMs: latencies.p50, p99LatencyMs: latencies.p99, rawMedianMs: rawMs, rawP99Ms: pct(raw, 99), upstreamMs },
    });
    report('sync', 'same, overhead at p99', latencies.p99 - upstreamMs - rawMs, 'ms', undefined, `p99 latency ${fmt(latencies.p99)} ms − raw median ${fmt(rawMs)} ms`);
  }
}
