#!/usr/bin/env node
// `npm start`: builds, finds or starts a Redis, runs the API and one worker together,
// and prints where everything is. Ctrl-C (SIGINT) or SIGTERM stops it all cleanly.
//
// Plain Node ESM with built-ins only, so it runs right after `npm ci`.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);

const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
const API_MAIN = path.join(ROOT, 'apps/api/dist/main.js');
const WORKER_MAIN = path.join(ROOT, 'apps/worker/dist/main.js');
const CHILD_STOP_TIMEOUT_MS = 75_000; // the worker drains active jobs (SHUTDOWN_TIMEOUT_MS, 60 s by default)

const useColor = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code, text) => (useColor ? `\x1b[${code}m${text}\x1b[0m` : text);
const say = (msg) => process.stdout.write(`${paint('36', '[start]')} ${msg}\n`);
const fail = (msg) => process.stderr.write(`${paint('31', '[start]')} ${msg}\n`);
const redact = (url) => url.replace(/\/\/[^@/]*@/, '//***@');

/** @type {Map<string, import('node:child_process').ChildProcess>} */
const children = new Map();
let stopping = false;
let redisStopRequested = false;

// ---------------------------------------------------------------- build

function build() {
  say('building (turbo caches: fast when nothing changed)');
  const turbo = path.join(ROOT, 'node_modules', '.bin', process.platform === 'win32' ? 'turbo.cmd' : 'turbo');
  if (!existsSync(turbo)) {
    fail('turbo is not installed: run `npm ci` first');
    process.exit(1);
  }
  const res = spawnSync(turbo, ['run', 'build', '--output-logs=errors-only'], {
    stdio: 'inherit',
    env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1', TURBO_NO_UPDATE_NOTIFIER: '1' },
  });
  if (res.status !== 0 || !existsSync(API_MAIN) || !existsSync(WORKER_MAIN)) {
    fail(`build failed${res.error ? `: ${res.error.message}` : ''}`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------- redis

/** RESP encoding of one command, so passwords with spaces survive. */
const resp = (...args) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

/**
 * Sends (AUTH and) PING to a redis:// or rediss:// URL.
 * Resolves { ok: true } on +PONG, else { ok: false, reason }.
 */
function probeRedis(url, timeoutMs = 2000) {
  return new Promise((resolve) => {
    let u;
    try {
      u = new URL(url);
    } catch {
      resolve({ ok: false, reason: 'not a valid URL' });
      return;
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
      resolve({ ok: false, reason: 'must start with redis:// or rediss://' });
      return;
    }
    const host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(u.port || 6379);
    const socket =
      u.protocol === 'rediss:' ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host }) : net.connect({ host, port });
    let buf = '';
    const done = (result) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, reason: 'no answer (timed out)' }), timeoutMs);
    socket.once(u.protocol === 'rediss:' ? 'secureConnect' : 'connect', () => {
      const password = decodeURIComponent(u.password);
      const user = decodeURIComponent(u.username);
      let out = '';
      if (password) out += user ? resp('AUTH', user, password) : resp('AUTH', password);
      out += resp('PING');
      socket.write(out);
    });
    socket.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      if (buf.includes('+PONG\r\n')) done({ ok: true });
      else if (/^-|\r\n-/.test(buf) && buf.endsWith('\r\n')) done({ ok: false, reason: `answered "${buf.trim().split('\r\n').find((l) => l.startsWith('-'))}"` });
    });
    socket.on('error', (err) => done({ ok: false, reason: err.code ?? err.message }));
    socket.on('close', () => done({ ok: false, reason: 'connection closed' }));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function onPath(bin) {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  return dirs.some((d) => existsSync(path.join(d, bin)));
}

async function startOwnRedis() {
  const port = Number(process.env.IMAGEGEN_REDIS_PORT) || (await freePort());
  const dir = path.join(ROOT, 'data', 'redis');
  mkdirSync(dir, { recursive: true });
  say(`starting redis-server on 127.0.0.1:${port} (data in ${path.relative(ROOT, dir)})`);
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--maxmemory-policy', 'noeviction'],
    // Own process group: a terminal Ctrl-C must not stop Redis before the worker has drained.
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  // Redis talks a lot at start; its output is kept back and shown only if it fails.
  const redisLog = [];
  watchChild('redis', child, '35', (line) => {
    redisLog.push(line);
    if (redisLog.length > 40) redisLog.shift();
  });
  child.once('exit', () => {
    if (!redisStopRequested) for (const line of redisLog) process.stderr.write(`${paint('35', '[redis]')} ${line}\n`);
  });
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if ((await probeRedis(url, 500)).ok) return url;
    await sleep(100);
  }
  fail('redis-server did not start (see its output above)');
  await shutdown(1);
  return undefined;
}

async function resolveRedis() {
  if (process.env.REDIS_URL) {
    const url = process.env.REDIS_URL;
    const probe = await probeRedis(url);
    if (probe.ok) {
      say(`using Redis at ${redact(url)} (REDIS_URL)`);
      return url;
    }
    fail(`REDIS_URL=${redact(url)} does not answer PING: ${probe.reason}`);
    fail('Start that Redis, fix REDIS_URL, or unset it to let `npm start` find or start one.');
    process.exit(1);
  }
  // Testing knob: IMAGEGEN_REDIS_PROBE_DEFAULT=0 skips 127.0.0.1:6379 to exercise the own-Redis path.
  if (process.env.IMAGEGEN_REDIS_PROBE_DEFAULT !== '0') {
    if ((await probeRedis(DEFAULT_REDIS_URL)).ok) {
      say(`using the Redis already running at ${DEFAULT_REDIS_URL}`);
      return DEFAULT_REDIS_URL;
    }
  }
  if (onPath('redis-server')) return startOwnRedis();
  fail('No Redis found: REDIS_URL is unset, nothing answers on 127.0.0.1:6379, and redis-server is not installed.');
  fail('Any one of these fixes it:');
  fail('  sudo apt-get install -y redis-server          # Debian/Ubuntu (then rerun npm start)');
  fail('  brew install redis                            # macOS');
  fail('  docker run -d --name redis -p 6379:6379 redis:7-alpine redis-server --appendonly yes');
  fail('  REDIS_URL=redis://host:6379 npm start         # use an existing Redis');
  process.exit(1);
}

// ---------------------------------------------------------------- children

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function prefixLines(stream, label, color, out) {
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  rl.on('line', (line) => out.write(`${paint(color, `[${label}]`)} ${line}\n`));
}

function watchChild(name, child, color, onLine) {
  children.set(name, child);
  if (onLine) {
    readline.createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', onLine);
    readline.createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', onLine);
  } else {
    prefixLines(child.stdout, name, color, process.stdout);
    prefixLines(child.stderr, name, color, process.stderr);
  }
  child.on('error', (err) => {
    fail(`${name} could not start: ${err.message}`);
    if (!stopping) void shutdown(1);
  });
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (!stopping) {
      fail(`${name} exited unexpectedly (${signal ?? `code ${code}`}): stopping everything`);
      void shutdown(1);
    }
  });
}

function startNode(name, main, env, color) {
  const child = spawn(process.execPath, [main], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group: the signal comes from here, once, so each process drains exactly once.
    detached: true,
  });
  watchChild(name, child, color);
  return child;
}

function waitExit(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopChild(name, timeoutMs) {
  const child = children.get(name);
  if (!child) return;
  child.kill('SIGTERM');
  if (!(await waitExit(child, timeoutMs))) {
    fail(`${name} did not stop within ${Math.round(timeoutMs / 1000)} s: killing it`);
    child.kill('SIGKILL');
    await waitExit(child, 5000);
  }
}

let shutdownPromise;
function shutdown(code) {
  if (shutdownPromise) return shutdownPromise;
  stopping = true;
  shutdownPromise = (async () => {
    const apps = ['api', 'worker'].filter((n) => children.has(n));
    if (apps.length) say(`stopping ${apps.join(' and ')}`);
    await Promise.all(apps.map((n) => stopChild(n, CHILD_STOP_TIMEOUT_MS)));
    if (children.has('redis')) {
      say('stopping redis-server');
      redisStopRequested = true;
      await stopChild('redis', 10_000);
    }
    say(code === 0 ? 'stopped' : `stopped (exit ${code})`);
    process.exit(code);
  })();
  return shutdownPromise;
}

// Last resort if this process dies abruptly: do not leave children behind.
process.on('exit', () => {
  for (const child of children.values()) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

let lastSignalAt = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    const now = Date.now();
    if (stopping) {
      // npm and the terminal may both deliver one Ctrl-C; a later one forces the stop.
      if (now - lastSignalAt > 2000) {
        fail('forced stop');
        process.exit(1);
      }
      return;
    }
    lastSignalAt = now;
    void shutdown(0);
  });
}

// `kill <npm pid>` stops npm and its `sh -c` without passing the signal on: notice being
// orphaned and stop as if signalled, so nothing is left running.
const initialParent = process.ppid;
setInterval(() => {
  if (!stopping && process.ppid !== initialParent) {
    say('parent process went away: stopping');
    void shutdown(0);
  }
}, 500).unref();

function getHealth(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------- main

async function main() {
  build();
  const redisUrl = await resolveRedis();
  if (!redisUrl || stopping) return;

  const port = Number(process.env.PORT || 3000);
  const base = (process.env.PUBLIC_BASE_URL || `http://localhost:${port}`).replace(/\/+$/, '');
  const adminUser = process.env.ADMIN_USER || 'admin';
  const generatedPassword = process.env.ADMIN_PASSWORD ? undefined : randomBytes(12).toString('base64url');
  const env = {
    ...process.env,
    REDIS_URL: redisUrl,
    DATA_DIR: process.env.DATA_DIR || './data',
    PORT: String(port),
    // the children write to a pipe: readable lines when this terminal is a person's
    LOG_FORMAT: process.env.LOG_FORMAT || (process.stdout.isTTY ? 'pretty' : 'json'),
  };
  delete env.IMAGEGEN_REDIS_PROBE_DEFAULT;
  delete env.IMAGEGEN_REDIS_PORT;

  startNode('api', API_MAIN, { ...env, ...(generatedPassword ? { ADMIN_PASSWORD: generatedPassword } : {}) }, '32');
  startNode('worker', WORKER_MAIN, env, '33');

  const deadline = Date.now() + 60_000;
  while (!stopping && !(await getHealth(port))) {
    if (Date.now() > deadline) {
      fail(`the API did not answer /healthz on port ${port} within 60 s`);
      await shutdown(1);
      return;
    }
    await sleep(250);
  }
  if (stopping) return;

  const lines = [
    '',
    paint('1', 'imagegen is running'),
    `  API        ${base}`,
    `  Dashboard  ${base}/admin/queues`,
    `  API docs   ${base}/docs`,
    generatedPassword
      ? `  Admin      user ${adminUser}, password ${generatedPassword} (generated for this run; set ADMIN_PASSWORD to fix it)`
      : `  Admin      user ${adminUser}, password from ADMIN_PASSWORD`,
    `  Redis      ${redact(redisUrl)}`,
    '',
    '  Try it:',
    `  curl -s -X POST ${base}/api/odin/v3/tools/image-generator -H 'Content-Type: application/json' -d '{"topic":"a lighthouse at dawn","style":"PHOTOGRAPHIC","size":"LANDSCAPE"}'`,
    '',
    '  Ctrl-C stops everything.',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch(async (err) => {
  fail(`failed: ${err?.stack ?? err}`);
  await shutdown(1);
});
