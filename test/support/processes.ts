import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { TEMPORARY_DIR } from '@imagegen/shared';
import { freePort, sleep } from './net';

/**
 * Real OS processes for the tests that kill things: the built entry points
 * (`apps/*\/dist/main.js`, so run `npx turbo run build` first) and a private
 * `redis-server` with AOF. Every process started here is tracked, and
 * `killAllSpawned()` (also run on exit) makes sure none outlives the test file.
 */

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const ENTRY_POINTS = {
  api: path.join(REPO_ROOT, 'apps/api/dist/main.js'),
  worker: path.join(REPO_ROOT, 'apps/worker/dist/main.js'),
} as const;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** SIGKILLs every process this module started that is still running. */
export async function killAllSpawned(): Promise<void> {
  const waits = [...live].map((child) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()))));
  for (const child of live) child.kill('SIGKILL');
  await Promise.all(waits);
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** ms since the process was spawned */
  at: number;
}

/** A JSON log line of ours (`createLogger`), or `{ msg: <raw line> }` for anything else. */
export type LogLine = { msg: string; level?: string; time?: string; [k: string]: unknown };

export interface NodeProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly env: Record<string, string>;
  readonly startedAt: number;
  /** Resolves when the process has exited, however it went. */
  readonly exited: Promise<Exit>;
  readonly exit: Exit | undefined;
  stdout(): string;
  stderr(): string;
  logs(): LogLine[];
  /** Resolves with the first log line (already seen or still to come) matching `match`. */
  waitForLog(match: string | ((l: LogLine) => boolean), timeoutMs?: number): Promise<LogLine>;
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<Exit>;
  /** SIGTERM and wait for the exit; SIGKILL after `graceMs` if it has not gone by then. */
  terminate(graceMs?: number): Promise<Exit>;
}

export interface SpawnOptions {
  /** Environment on top of the inherited one. `LOG_LEVEL` defaults to `info`: readiness reads the log. */
  env: Record<string, string>;
  name?: string;
  /** How long to wait for readiness (ms). */
  readyTimeoutMs?: number;
  /** Copy each output line to the test's stdout (or set TEST_PROCESS_OUTPUT=1). */
  echo?: boolean;
}

export function spawnNode(script: string, name: string, opts: SpawnOptions): NodeProcess {
  const env: Record<string, string> = { LOG_LEVEL: 'info', ...opts.env };
  const child = spawn(process.execPath, [script], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  const startedAt = Date.now();
  const echo = opts.echo ?? process.env.TEST_PROCESS_OUTPUT === '1';
  let out = '';
  let err = '';
  let partial = '';
  const lines: LogLine[] = [];
  const waiters = new Set<(l: LogLine) => void>();
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    out += chunk;
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const raw = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (!raw.trim()) continue;
      if (echo) process.stdout.write(`[${name}] ${raw}\n`);
      let line: LogLine;
      try {
        line = JSON.parse(raw) as LogLine;
        if (typeof line !== 'object' || line === null || typeof line.msg !== 'string') line = { msg: raw };
      } catch {
        line = { msg: raw };
      }
      lines.push(line);
      for (const w of [...waiters]) w(line);
    }
  });
  child.stderr!.on('data', (chunk: string) => {
    err += chunk;
    if (echo) process.stderr.write(`[${name}!] ${chunk}`);
  });
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal, at: Date.now() - startedAt };
      resolve(exit);
    });
  });

  const waitForLog = (match: string | ((l: LogLine) => boolean), timeoutMs = 15_000): Promise<LogLine> => {
    const test = typeof match === 'string' ? (l: LogLine) => l.msg === match : match;
    const seen = lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        waiters.delete(onLine);
      };
      const onLine = (l: LogLine) => {
        if (!test(l)) return;
        done();
        resolve(l);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${name}: no log line ${typeof match === 'string' ? JSON.stringify(match) : 'matching'} within ${timeoutMs} ms\nstdout:\n${out.slice(-4000)}\nstderr:\n${err.slice(-4000)}`));
      }, timeoutMs);
      waiters.add(onLine);
      void exited.then((e) => {
        if (!waiters.has(onLine)) return;
        done();
        reject(new Error(`${name} exited (code ${e.code}, signal ${e.signal}) before log line ${typeof match === 'string' ? JSON.stringify(match) : 'matching'}\nstdout:\n${out.slice(-4000)}\nstderr:\n${err.slice(-4000)}`));
      });
    });
  };

  const proc: NodeProcess = {
    name,
    child,
    pid: child.pid!,
    env,
    startedAt,
    exited,
    get exit() {
      return exit;
    },
    stdout: () => out,
    stderr: () => err,
    logs: () => [...lines],
    waitForLog,
    signal: (sig) => {
      if (!exit) child.kill(sig);
    },
    kill: async () => {
      if (!exit) child.kill('SIGKILL');
      return exited;
    },
    terminate: async (graceMs = 30_000) => {
      if (!exit) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const e = await exited;
      clearTimeout(timer);
      return e;
    },
  };
  return proc;
}

/** The exit of `proc` if it comes within `ms`, else undefined (the process is left running). */
export function exitWithin(proc: NodeProcess, ms: number): Promise<Exit | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([proc.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]).finally(() => clearTimeout(timer));
}

/** Runs an entry point expected to stop by itself (a refused start, say); SIGKILLs it after `timeoutMs`. */
export async function runToExit(script: string, env: Record<string, string>, timeoutMs = 20_000): Promise<{ exit: Exit | undefined; stdout: string; stderr: string }> {
  const proc = spawnNode(script, path.basename(path.dirname(path.dirname(script))), { env });
  const exit = await exitWithin(proc, timeoutMs);
  if (!exit) await proc.kill();
  return { exit, stdout: proc.stdout(), stderr: proc.stderr() };
}

let workerSeq = 0;

/** `node apps/worker/dist/main.js`; resolves once it logged "worker started". */
export async function spawnWorker(opts: SpawnOptions): Promise<NodeProcess> {
  const proc = spawnNode(ENTRY_POINTS.worker, opts.name ?? `worker-${++workerSeq}`, opts);
  if (proc.env.LOG_LEVEL === 'silent' || proc.env.LOG_LEVEL === 'error' || proc.env.LOG_LEVEL === 'warn') {
    throw new Error('spawnWorker reads readiness from the "worker started" log line: LOG_LEVEL must be info or debug');
  }
  try {
    await proc.waitForLog('worker started', opts.readyTimeoutMs ?? 15_000);
  } catch (err) {
    await proc.kill();
    throw err;
  }
  return proc;
}

export interface ApiProcess extends NodeProcess {
  baseUrl: string;
}

/** `node apps/api/dist/main.js`; resolves once /healthz answers. PORT is picked if absent. */
export async function spawnApi(opts: SpawnOptions): Promise<ApiProcess> {
  const port = opts.env.PORT ? Number(opts.env.PORT) : await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env = { HOST: '127.0.0.1', PUBLIC_BASE_URL: baseUrl, ...opts.env, PORT: String(port) };
  const proc = spawnNode(ENTRY_POINTS.api, opts.name ?? 'api', { ...opts, env });
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  for (;;) {
    if (proc.exit) throw new Error(`api exited (code ${proc.exit.code}) before it was ready\nstdout:\n${proc.stdout()}\nstderr:\n${proc.stderr()}`);
    const ok = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      await proc.kill();
      throw new Error(`api not ready within ${opts.readyTimeoutMs ?? 15_000} ms\nstdout:\n${proc.stdout()}\nstderr:\n${proc.stderr()}`);
    }
    await sleep(50);
  }
  return Object.assign(proc, { baseUrl });
}

// ---------------------------------------------------------------------------------------------
// a private redis-server

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** The AOF lives here; it survives stop() and is reused by start(). */
  readonly dir: string;
  readonly running: boolean;
  /** Process id of the running server (to freeze it with SIGSTOP, say). */
  readonly pid: number | undefined;
  /** Process output of every run so far. */
  output(): string;
  /** Starts (or restarts) the server on the same port and dir; resolves once it accepts commands. */
  start(): Promise<void>;
  /**
   * Stops it. `shutdown` (default): `SHUTDOWN` over the wire, which fsyncs the AOF first.
   * `sigterm`: the same, by signal. `sigkill`: a crash (with appendfsync always, nothing acknowledged is lost).
   */
  stop(how?: 'shutdown' | 'sigterm' | 'sigkill'): Promise<void>;
  /** Stops it and removes its dir. */
  destroy(): Promise<void>;
}

/** `redis-server --appendonly yes --appendfsync always --save "" --dir <tmpdir>` on a free port. */
export async function startRedisServer(opts: { port?: number; dir?: string; bin?: string; readyTimeoutMs?: number; extraArgs?: string[] } = {}): Promise<RedisServer> {
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'imagegen-redis-')));
  const bin = opts.bin ?? process.env.REDIS_SERVER_BIN ?? 'redis-server';
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';

  const args = ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir, '--save', '', '--daemonize', 'no', '--protected-mode', 'no', '--loglevel', 'notice', ...(opts.extraArgs ?? [])];

  const start = async () => {
    if (child) throw new Error(`redis-server on ${port} is already running`);
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(proc);
    child = proc;
    let exitInfo: string | undefined;
    exited = new Promise<void>((resolve) =>
      proc.once('exit', (code, signal) => {
        exitInfo = `code ${code}, signal ${signal}`;
        if (child === proc) child = undefined;
        resolve();
      }),
    );
    let runOutput = '';
    const collect = (c: string) => {
      output += c;
      runOutput += c;
    };
    proc.stdout!.setEncoding('utf8').on('data', collect);
    proc.stderr!.setEncoding('utf8').on('data', collect);
    // "Ready to accept connections" is logged after the AOF is loaded; confirm with a PING anyway
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 10_000);
    for (;;) {
      if (exitInfo) throw new Error(`redis-server exited (${exitInfo}) while starting:\n${output.slice(-3000)}`);
      if (/Ready to accept connections/.test(runOutput) && (await ping(port))) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`redis-server not ready on ${port} within ${opts.readyTimeoutMs ?? 10_000} ms:\n${output.slice(-3000)}`);
      }
      await sleep(20);
    }
  };

  const stop = async (how: 'shutdown' | 'sigterm' | 'sigkill' = 'shutdown') => {
    const proc = child;
    if (!proc) return;
    if (how === 'shutdown') {
      const cli = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      cli.on('error', () => undefined);
      try {
        await cli.connect();
        // the server closes the connection as it exits: the reply is an error or nothing
        await cli.call('SHUTDOWN').catch(() => undefined);
      } catch {
        proc.kill('SIGTERM');
      } finally {
        cli.disconnect();
      }
    } else {
      proc.kill(how === 'sigterm' ? 'SIGTERM' : 'SIGKILL');
    }
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get running() {
      return child !== undefined;
    },
    get pid() {
      return child?.pid;
    },
    output: () => output,
    start,
    stop,
    async destroy() {
      await stop('sigkill');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function ping(port: number): Promise<boolean> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// files a worker left under DATA_DIR

/** `{ token: [file names] }` for every generation's directory under `<dataDir>/files`, names sorted (writes in progress live apart, in `.tmp`). */
export async function storedFiles(dataDir: string): Promise<Record<string, string[]>> {
  const root = path.join(dataDir, 'files');
  const out: Record<string, string[]> = {};
  let tokens: string[];
  try {
    tokens = await readdir(root);
  } catch {
    return out;
  }
  for (const token of tokens.filter((t) => t !== TEMPORARY_DIR)) out[token] = (await readdir(path.join(root, token))).sort();
  return out;
}
