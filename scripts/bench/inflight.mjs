// inflight: how many generations one worker process keeps in flight against a slow upstream
// (2 s per call on average, no image work), the throughput that gives, and the memory it takes.
//
// Two choices make it measure the worker rather than the machine:
// - each upstream call takes 1.5–2.5 s (uniformly; 2 s on average, and the baseline uses the
//   average). Real upstreams vary far more. With every call exactly 2 s, a thousand generations
//   started together stay in lockstep: they come back in one burst every cycle and queue behind
//   each other for the worker's thread, which no real traffic does.
// - the run the target is judged on keeps DATA_DIR in memory (/dev/shm, where there is one). With no
//   image work a generation is mostly its new folder and files, and on a virtual machine's disk
//   making them costs anywhere from 0.2 to 5 ms of kernel time per generation. The same run on the
//   disk is reported beside it, with what that disk allows at all: the same folders and files made
//   by a bare loop on every core, with nothing else to do.
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { CORES, QUICK, report, runConcurrent, sleep, benchRedis, ask, procMemory } from './common.mjs';
import { fsCeiling } from './fs-ceiling.mjs';
import { startStack } from './stack.mjs';

const require = createRequire(import.meta.url);
const shared = require('@imagegen/shared');
const apiPkg = require('@imagegen/api');

const CONCURRENCY = 1000;
const UPSTREAM_MS = 2000;
const JITTER = 0.25;
const MEMORY_ROOT = '/dev/shm';

/** Files and bytes the run left under its DATA_DIR, per generation. */
async function filesPerGeneration(dataDir, generations) {
  let files = 0;
  let bytes = 0;
  for (const dir of await readdir(path.join(dataDir, 'files'))) {
    for (const name of await readdir(path.join(dataDir, 'files', dir))) {
      files++;
      bytes += (await stat(path.join(dataDir, 'files', dir, name))).size;
    }
  }
  return { files: files / generations, bytes: files ? bytes / files : 0 };
}

/** One run: `n` generations queued, then one worker with WORKER_CONCURRENCY=1000 started on them. */
async function run(redis, dataRoot, n) {
  // the API is only needed to submit: in process, through its service, before the worker starts
  const stack = await startStack(redis, { worker: false, dataRoot });
  const config = apiPkg.loadApiConfig({ REDIS_URL: redis.url, QUEUE_PREFIX: stack.prefix, DATA_DIR: stack.dataDir, LOG_LEVEL: 'silent', ADMIN_PASSWORD: 'bench', RATE_LIMIT_PER_MINUTE: '100000000', QUOTA_ITEMS_PER_MINUTE: '100000000', QUOTA_MAX_QUEUED: '100000000' });
  const ctx = apiPkg.createApiContext(config, 'bench', shared.createLogger('api', 'silent'));
  try {
    await ctx.queues.generate.waitUntilReady();
    const service = new apiPkg.GenerationsService(ctx);
    await runConcurrent(Array.from({ length: n }, (_, i) => i), 16, (i) => service.create('default', { topic: `inflight ${i}`, style: 'PHOTOGRAPHIC', size: 'LANDSCAPE', priority: 'normal' }));
    const completedKey = shared.keysFor(stack.prefix).tenantGenerations('default', 'completed');
    const worker = await stack.startWorker({ upstreamMs: UPSTREAM_MS, upstreamJitter: JITTER, images: 'noop', png: 'tiny', env: { WORKER_CONCURRENCY: String(CONCURRENCY) } });
    const t0 = performance.now();
    const samples = [];
    let peakRss = 0;
    for (;;) {
      const [stats, completed] = await Promise.all([ask(worker, 'stats'), redis.admin.zcard(completedKey)]);
      samples.push({ t: performance.now() - t0, completed, calls: stats.calls, inFlight: stats.inFlight });
      peakRss = Math.max(peakRss, stats.rss);
      if (completed >= n) break;
      if (performance.now() - t0 > 120_000) throw new Error(`only ${completed} of ${n} completed in 120 s`);
      await sleep(100);
    }
    const peak = Math.max(...samples.map((s) => s.inFlight));
    const mem = await procMemory(worker.pid);
    // steady state: from the first sample after the first 1000 generations completed (every slot has
    // gone round once: the start-up ramp, when nothing can complete yet, is over) to the last sample
    // before the queue ran dry (every generation has called the upstream)
    const from = samples.find((s) => s.completed >= CONCURRENCY);
    const to = samples.findLast((s) => s.calls < n) ?? samples.at(-1);
    const steady = to.t > from.t ? ((to.completed - from.completed) / (to.t - from.t)) * 1000 : NaN;
    const written = await filesPerGeneration(stack.dataDir, n);
    return { peak, steady, ideal: peak / (UPSTREAM_MS / 1000), mem, peakRss, written, details: { generations: n, dataRoot, steadyWindowMs: [from.t, to.t], totalMs: samples.at(-1).t, samples: samples.filter((_, i) => i % 5 === 0) } };
  } finally {
    await ctx.close();
    await stack.close();
  }
}

export async function benchInflight() {
  const n = QUICK ? 3000 : 6000;
  const rounds = QUICK ? 1 : 3;
  const redis = await benchRedis();
  const diskRoot = os.tmpdir();
  const memoryRoot = existsSync(MEMORY_ROOT) ? MEMORY_ROOT : undefined;
  const runs = [];
  for (let r = 0; r < rounds; r++) runs.push(await run(redis, memoryRoot ?? diskRoot, n));
  // the round with the median throughput stands for all (its peak, memory and samples with it)
  const main = runs.toSorted((a, b) => a.steady - b.steady)[Math.floor(rounds / 2)];
  const where = memoryRoot ? `DATA_DIR in memory (${memoryRoot})` : `DATA_DIR on disk (${diskRoot})`;
  const upstream = `2 s upstream (1.5–2.5 s, uniform)`;
  const roundsNote = rounds > 1 ? `, median of ${rounds}` : '';
  report('inflight', `peak upstream calls in flight, 1 worker process, WORKER_CONCURRENCY=${CONCURRENCY}, ${upstream}, ${n} queued`, main.peak, 'calls', undefined, '', { target: { on: 'value', op: '>=', value: 1000 }, details: main.details });
  report('inflight', `throughput in steady state, ${where}${roundsNote}`, main.steady, 'gen/s', main.ideal, '', {
    baselineIs: `peak in flight ÷ 2 s (${Math.round(main.ideal)} gen/s), the most that concurrency allows`,
    target: { on: 'ratio', op: '>=', value: 0.9 },
    details: { rounds: runs.map((x) => ({ steady: x.steady, ideal: x.ideal })) },
  });
  report('inflight', 'worker peak RSS (VmHWM)', Math.max(...runs.map((x) => x.mem.hwmMiB)), 'MiB', undefined, `sampled RSS peak ${Math.round(Math.max(...runs.map((x) => x.peakRss)) / 2 ** 20)} MiB`, { target: { on: 'value', op: '<=', value: 400 } });
  if (!memoryRoot) return;
  const disk = await run(redis, diskRoot, n);
  const { files, bytes } = disk.written;
  const ceiling = await fsCeiling(diskRoot, { generations: QUICK ? 2000 : 4000, files: Math.round(files), bytes: Math.round(bytes), threads: CORES });
  report('inflight', `throughput in steady state, DATA_DIR on this machine's disk (${diskRoot})`, disk.steady, 'gen/s', disk.ideal, `the disk alone allows ${Math.round(ceiling)} gen/s`, {
    baselineIs: `peak in flight ÷ 2 s (${Math.round(disk.ideal)} gen/s); the disk's own limit: a bare loop on ${CORES} threads making a folder and ${Math.round(files)} files of ${Math.round(bytes)} bytes per generation, ${Math.round(ceiling)} gen/s`,
    details: { ...disk.details, diskCeilingGenPerS: ceiling, filesPerGeneration: files, bytesPerFile: bytes },
  });
}
