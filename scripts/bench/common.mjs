// Shared pieces of the benchmark: the results registry, timing helpers, child processes, the
// private Redis, /proc readers, and the raw sharp baselines every image figure is compared with.
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
export const sharp = require('sharp');
const { Redis } = require('ioredis');
const shared = require('@imagegen/shared');
const { rgbaToThumbHash } = require('thumbhash');

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
export const QUICK = process.argv.includes('--quick');
export const CORES = os.availableParallelism();
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

// ---------------------------------------------------------------- results
export const results = [];
const OPS = { '>=': (a, b) => a >= b, '<=': (a, b) => a <= b };

/**
 * One figure. `baseline` is a number measured in the same run, `note` says what it is (a note
 * beginning "baseline:" is the baseline's description). `extra.target` = { on: 'value' | 'ratio',
 * op: '>=' | '<=', value } makes the figure a product goal with pass/fail; `extra.details` keeps
 * breakdowns in results.json.
 */
export function report(section, name, value, unit, baseline, note = '', extra = {}) {
  const ratio = baseline ? value / baseline : undefined;
  const baselineIs = extra.baselineIs ?? (/^baseline: /.test(note) ? note.replace(/^baseline: /, '') : undefined);
  const target = extra.target;
  const met = target ? OPS[target.op](target.on === 'ratio' ? ratio : value, target.value) : undefined;
  results.push({ section, name, value, unit, baseline, baselineIs, ratio, target, met, note: baselineIs && note.startsWith('baseline: ') ? '' : note, ...(extra.details ? { details: extra.details } : {}) });
}

export const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : String(n));
export const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
export const median = (xs) => pct(xs, 50);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 50 ms until it holds; fails after `timeoutMs` rather than hang the run. */
export async function until(check, what, timeoutMs = 120_000) {
  const t0 = performance.now();
  while (!(await check())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export async function timed(fn) {
  const t0 = performance.now();
  const out = await fn();
  return { ms: performance.now() - t0, out };
}

export async function runConcurrent(items, concurrency, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

export function rssSampler() {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  return () => {
    clearInterval(timer);
    return peak;
  };
}

export const uid = () => randomBytes(3).toString('hex');

// ---------------------------------------------------------------- Redis helpers
export async function deletePrefix(redis, prefix) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Sums INFO commandstats: calls and µs per command name. */
export async function commandStats(redis) {
  const out = {};
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
    if (m) out[m[1]] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return out;
}

/** Per-command call deltas between two commandStats snapshots, less the bench's own INFO calls. */
export function commandDelta(before, after) {
  const out = {};
  for (const [name, st] of Object.entries(after)) {
    const d = st.calls - (before[name]?.calls ?? 0);
    if (d > 0 && name !== 'info') out[name] = d;
  }
  return out;
}

export async function redisCpuSeconds(redis) {
  const info = await redis.info('cpu');
  const get = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return get('used_cpu_user') + get('used_cpu_sys');
}

// ---------------------------------------------------------------- child processes
/**
 * A child process that resolves once `ready(output)` holds (or, with IPC, once it sends
 * { ready: true }); killed on exit. Only the tail of its output is kept, for errors.
 */
export function spawnChild(args, { env = {}, ready, ipc = false, timeoutMs = 60_000, cmd = process.execPath } = {}) {
  // BENCH_CPU_PROF=dir: every Node process the bench starts writes a CPU profile there when it exits
  const prof = cmd === process.execPath && process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = spawn(cmd, [...prof, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])] });
  let out = '';
  const collect = (d) => (out = (out + d).slice(-8000));
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  child.tail = () => out;
  return new Promise((resolve, reject) => {
    const fail = (why) => {
      clearTimeout(timer);
      reject(new Error(`${args.filter((a) => !a.startsWith('-')).at(0) ?? cmd} ${why}:\n${out.slice(-2000)}`));
    };
    const timer = setTimeout(() => fail('not ready in time'), timeoutMs);
    const onExit = (code) => fail(`exited ${code}`);
    child.once('exit', onExit);
    const done = () => {
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve(child);
    };
    if (ipc) {
      child.on('message', function onMsg(m) {
        if (m?.ready) {
          child.off('message', onMsg);
          done();
        }
      });
    } else {
      const check = () => ready(out) && (child.stdout.off('data', check), child.stderr.off('data', check), done());
      child.stdout.on('data', check);
      child.stderr.on('data', check);
    }
  });
}

/** Runs a Node script to its end; resolves its stdout, rejects with its stderr if it fails. */
export function runNode(args, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args[0]} exited ${code}: ${err}`))));
  });
}

export async function stopChild(child, signal = 'SIGKILL') {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timer = signal === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), 15_000);
  await gone;
  clearTimeout(timer);
}

/** Asks a child with IPC for something; it answers { reply: type, ... }. */
export function ask(child, type, payload = {}) {
  return new Promise((resolve) => {
    const on = (m) => {
      if (m?.reply === type) {
        child.off('message', on);
        resolve(m);
      }
    };
    child.on('message', on);
    child.send({ ...payload, type });
  });
}

// ---------------------------------------------------------------- /proc
const CLK_TCK = 100; // Linux USER_HZ, the unit of /proc/<pid>/stat times

/** CPU seconds of `pid` in user space and in the kernel (system calls: files, sockets), from /proc/<pid>/stat. */
export async function procCpuSplit(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15
  return { user: Number(fields[11]) / CLK_TCK, kernel: Number(fields[12]) / CLK_TCK };
}

/** Peak and current resident set size in MiB, from /proc/<pid>/status. */
export async function procMemory(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { hwmMiB: kb('VmHWM') / 1024, rssMiB: kb('VmRSS') / 1024 };
}

/** Local TCP ports of a process's sockets: how Redis's client addresses map back to processes. */
export async function procLocalPorts(pid) {
  const inodes = new Set();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) inodes.add(m[1]);
  }
  const ports = new Set();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && inodes.has(cols[9])) ports.add(parseInt(cols[1].split(':')[1], 16));
    }
  }
  return ports;
}

// ---------------------------------------------------------------- private Redis
let privateRedis;
/**
 * A redis-server of the bench's own on a free port (no persistence), so CPU, commandstats and
 * MONITOR see this workload alone; REDIS_URL when redis-server is not installed.
 */
export async function benchRedis() {
  if (privateRedis) return privateRedis;
  const port = await freePort();
  try {
    const child = await spawnChild(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', os.tmpdir()], { cmd: 'redis-server', ready: (o) => /Ready to accept/.test(o) });
    const url = `redis://127.0.0.1:${port}`;
    privateRedis = { url, port, private: true, admin: new Redis(url), close: () => stopChild(child) };
  } catch (err) {
    console.log(`  no private redis-server (${err.message.split('\n')[0]}): using REDIS_URL; Redis CPU and commands include other clients`);
    privateRedis = { url: REDIS_URL, private: false, admin: new Redis(REDIS_URL), close: async () => undefined };
  }
  privateRedis.version = /redis_version:(\S+)/.exec(await privateRedis.admin.info('server'))?.[1];
  return privateRedis;
}
export async function closeBenchRedis() {
  if (!privateRedis) return;
  await privateRedis.admin.quit().catch(() => undefined);
  await privateRedis.close();
  privateRedis = undefined;
}

// ---------------------------------------------------------------- images
export const THUMB_SIZES = [1024, 512, 256];
export const THUMB_OPTS = { sizes: THUMB_SIZES, format: 'webp', quality: 80, maxPixels: 8192 * 8192, placeholder: true };

/** A noise-like image (blurred random pixels): compresses and resizes like a photo, not like a flat fill. */
export function noiseImage(width, height) {
  return sharp(randomBytes(width * height * 3), { raw: { width, height, channels: 3 } }).blur(1.2);
}
export const noisePng = () => noiseImage(1344, 768).png().toBuffer();

/**
 * The strongest raw path a user could write for the product's outputs: decode (and shrink to
 * the largest size) once, then `clone()` the decoded pixels for each size and for the thumbhash
 * placeholder. Same sizes, format, quality and effort as the product.
 */
export async function rawThumbnails(input, sizes = THUMB_SIZES) {
  const largest = Math.max(...sizes);
  const { data, info } = await sharp(input).rotate().resize(largest, largest, { fit: 'inside', withoutEnlargement: true }).raw().toBuffer({ resolveWithObject: true });
  const base = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } });
  const [thumbs, tiny] = await Promise.all([
    Promise.all(sizes.map((size) => base.clone().resize(size, size, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 80, effort: 4 }).toBuffer())),
    base.clone().resize(100, 100, { fit: 'inside' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true }),
  ]);
  rgbaToThumbHash(tiny.info.width, tiny.info.height, tiny.data);
  return thumbs;
}

/** What a straightforward build does: every size (and the placeholder) decodes the original again. */
export async function naiveThumbnails(input, sizes = THUMB_SIZES) {
  const out = [];
  for (const size of sizes) out.push(await sharp(input).rotate().resize(size, size, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 80, effort: 4 }).toBuffer());
  const tiny = await sharp(input).resize(100, 100, { fit: 'inside' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  rgbaToThumbHash(tiny.info.width, tiny.info.height, tiny.data);
  return out;
}

// ---------------------------------------------------------------- the bare BullMQ payload
/** The generate job exactly as the API adds it: name, data and options. */
export function generateJob(i, policy = { maxAttempts: 5, backoffMs: 2000, retentionSeconds: 30 * 24 * 3600 }) {
  // the API's defaults: GENERATOR_MAX_ATTEMPTS, GENERATOR_BACKOFF_MS, RECORD_RETENTION_HOURS
  const id = shared.newId('gen');
  const topic = `bench ${i}`;
  return { name: shared.generateJobName(topic), data: { generationId: id, tenant: 'default' }, opts: shared.generateJobOptions(id, 'normal', policy) };
}
