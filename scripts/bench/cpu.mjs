// cpu: CPU per generation outside the image work (no-op image stage): API and worker processes
// from /proc/<pid>/stat, Redis from INFO cpu of the private Redis, next to a bare BullMQ process
// doing add → process → complete of the same job.
import { QUICK, report, benchRedis, procCpuSplit, redisCpuSeconds } from './common.mjs';
import { existsSync } from 'node:fs';
import { keptStack, load, startStack } from './stack.mjs';
import { startBare } from './bare.mjs';

/** CPU seconds of each pid (and the kernel's part of them) and of Redis while `action` runs. */
async function cpuWhile(redis, pids, action) {
  const read = () => Promise.all([...Object.values(pids).map(procCpuSplit), redisCpuSeconds(redis.admin)]);
  const before = await read();
  const out = await action();
  const after = await read();
  const names = Object.keys(pids);
  const cpu = Object.fromEntries(names.map((k, i) => [k, after[i].user + after[i].kernel - before[i].user - before[i].kernel]));
  const kernel = Object.fromEntries(names.map((k, i) => [k, after[i].kernel - before[i].kernel]));
  return { out, cpu: { ...cpu, redis: after[names.length] - before[names.length] }, kernel };
}

/** API, worker and Redis CPU of `n` generations through `stack`. */
async function measure(redis, stack, n) {
  // as in e2e: Prefer: wait, 64 open at once, the load client in its own process (not counted)
  const opts = { url: `${stack.base}/v1/generations`, concurrency: 64, headers: { Prefer: 'wait=60' }, expectStatus: 200, expectCompleted: true, topic: 'cpu' };
  await load({ ...opts, n: 30 });
  return cpuWhile(redis, { api: stack.api.pid, worker: stack.worker.pid }, () => load({ ...opts, n }));
}

export async function benchCpu() {
  const n = QUICK ? 150 : 1000;
  const redis = await benchRedis();
  if (!redis.private) console.log('  cpu: no private Redis, its CPU includes other clients');
  const ours = await measure(redis, await keptStack(redis, 'noop', { worker: { images: 'noop', png: 'jpeg' } }), n);
  // the same with DATA_DIR in memory: what the machine's disk adds (creating a file costs a virtual
  // machine's disk anything from microseconds to milliseconds of kernel time)
  let inMemory;
  if (existsSync('/dev/shm')) {
    const memoryStack = await startStack(redis, { worker: { images: 'noop', png: 'jpeg' }, dataRoot: '/dev/shm' });
    try {
      inMemory = await measure(redis, memoryStack, n);
    } finally {
      await memoryStack.close();
    }
  }
  const bare = await startBare(redis);
  let raw;
  try {
    await bare.run(50);
    raw = await cpuWhile(redis, { bare: bare.child.pid }, () => bare.run(n));
  } finally {
    await bare.close();
  }
  const ms = (s) => (s * 1000) / n;
  const total = ms(ours.cpu.api + ours.cpu.worker + ours.cpu.redis);
  const rawTotal = ms(raw.cpu.bare + raw.cpu.redis);
  const details = { n, ours: { apiMs: ms(ours.cpu.api), workerMs: ms(ours.cpu.worker), redisMs: ms(ours.cpu.redis), genPerSec: ours.out.rate }, bare: { processMs: ms(raw.cpu.bare), redisMs: ms(raw.cpu.redis), jobsPerSec: (n / raw.out) * 1000 } };
  const bareIs = 'bare BullMQ: add of the same job → Worker → complete, one process + Redis';
  report('cpu', `CPU per generation outside image work: API + worker + Redis (no-op image stage, ~110 KB JPEG original stored, ${n} generations)`, total, 'ms', rawTotal, 'includes background work during the run (feeder polls, scheduler); /proc ticks are 10 ms', { baselineIs: bareIs, target: { on: 'value', op: '<=', value: 8 }, details });
  report('cpu', 'of which API', ms(ours.cpu.api), 'ms');
  report('cpu', 'of which worker', ms(ours.cpu.worker), 'ms', ms(raw.cpu.bare), '', { baselineIs: 'bare BullMQ process' });
  // files are created in the kernel: on a virtual machine's disk that part swings with the disk, not the code
  report('cpu', 'of which worker in the kernel (system calls: file creation and writes, sockets)', ms(ours.kernel.worker), 'ms');
  report('cpu', 'of which Redis', ms(ours.cpu.redis), 'ms', ms(raw.cpu.redis), '', { baselineIs: 'Redis under bare BullMQ' });
  if (inMemory) report('cpu', 'same, DATA_DIR in memory (/dev/shm): API + worker + Redis', ms(inMemory.cpu.api + inMemory.cpu.worker + inMemory.cpu.redis), 'ms', rawTotal, `worker ${ms(inMemory.cpu.worker).toFixed(2)} ms, of which kernel ${ms(inMemory.kernel.worker).toFixed(2)} ms`, { baselineIs: bareIs, details: { apiMs: ms(inMemory.cpu.api), workerMs: ms(inMemory.cpu.worker), workerKernelMs: ms(inMemory.kernel.worker), redisMs: ms(inMemory.cpu.redis) } });
  report('cpu', 'throughput of this run (Prefer: wait, 64 clients)', ours.out.rate, 'gen/s', (n / raw.out) * 1000, '', { baselineIs: 'bare BullMQ add → process → complete, 16 adds at once' });
}
