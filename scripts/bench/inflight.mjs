// inflight: how many generations one worker process keeps in flight against a slow upstream
// (2 s per call, no image work), the throughput that gives, and the memory it takes.
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { QUICK, report, runConcurrent, sleep, benchRedis, ask, procMemory, uid } from './common.mjs';
import { startStack } from './stack.mjs';

const require = createRequire(import.meta.url);
const shared = require('@imagegen/shared');
const apiPkg = require('@imagegen/api');

export async function benchInflight() {
  const n = QUICK ? 1300 : 3000;
  const concurrency = 1000;
  const upstreamMs = 2000;
  const redis = await benchRedis();
  // the API is only needed to submit: in process, through its service, before the worker starts
  const stack = await startStack(redis, { worker: false });
  const config = apiPkg.loadApiConfig({ REDIS_URL: redis.url, QUEUE_PREFIX: stack.prefix, DATA_DIR: stack.dataDir, LOG_LEVEL: 'silent', ADMIN_PASSWORD: 'bench', RATE_LIMIT_PER_MINUTE: '100000000', QUOTA_ITEMS_PER_MINUTE: '100000000', QUOTA_MAX_QUEUED: '100000000' });
  const ctx = apiPkg.createApiContext(config, 'bench', shared.createLogger('api', 'silent'));
  let worker;
  try {
    await ctx.queues.generate.waitUntilReady();
    const service = new apiPkg.GenerationsService(ctx);
    await runConcurrent(Array.from({ length: n }, (_, i) => i), 16, (i) => service.create('default', { topic: `inflight ${i}`, style: 'PHOTOGRAPHIC', size: 'LANDSCAPE', priority: 'normal' }));
    const completedKey = shared.keysFor(stack.prefix).tenantGenerations('default', 'completed');
    worker = await stack.startWorker({ upstreamMs, images: 'noop', png: 'tiny', env: { WORKER_CONCURRENCY: String(concurrency) } });
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
    // steady state: from the first sample at ≥ 90 % of the peak in flight to the last sample before
    // the queue ran dry (every generation has called the upstream)
    const from = samples.find((s) => s.inFlight >= 0.9 * peak);
    const to = samples.findLast((s) => s.calls < n) ?? samples.at(-1);
    const steady = to.t > from.t ? ((to.completed - from.completed) / (to.t - from.t)) * 1000 : NaN;
    const ideal = peak / (upstreamMs / 1000);
    const details = { generations: n, workerConcurrency: concurrency, upstreamMs, steadyWindowMs: [from.t, to.t], totalMs: samples.at(-1).t, samples: samples.filter((_, i) => i % 5 === 0) };
    report('inflight', `peak upstream calls in flight, 1 worker process, WORKER_CONCURRENCY=${concurrency}, 2 s upstream, ${n} queued`, peak, 'calls', undefined, '', { target: { on: 'value', op: '>=', value: 1000 }, details });
    report('inflight', 'throughput in steady state', steady, 'gen/s', ideal, '', { baselineIs: `peak in flight ÷ 2 s (${Math.round(ideal)} gen/s), the most that concurrency allows`, target: { on: 'ratio', op: '>=', value: 0.9 } });
    report('inflight', 'worker peak RSS (VmHWM)', mem.hwmMiB, 'MiB', undefined, `sampled RSS peak ${Math.round(peakRss / 2 ** 20)} MiB`, { target: { on: 'value', op: '<=', value: 400 } });
  } finally {
    await ctx.close();
    await stack.close();
  }
}
