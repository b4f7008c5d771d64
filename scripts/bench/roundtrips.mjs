// roundtrips: Redis round trips per generation (API + worker), counted with MONITOR on the
// bench's private Redis and attributed to processes by their sockets' local ports, next to a bare
// BullMQ add → process → complete of the same job in the same run.
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import net from 'node:net';
import { QUICK, report, sleep, until, benchRedis, commandStats, commandDelta, procLocalPorts } from './common.mjs';
import { keptStack, load } from './stack.mjs';
import { startBare } from './bare.mjs';

const require = createRequire(import.meta.url);
const shared = require('@imagegen/shared');

/**
 * A plain socket in MONITOR mode (RESP simple strings: `+<time> [<db> <addr>|lua] "CMD" ...`);
 * resolves once Redis has answered +OK, so the window opens with MONITOR on.
 */
function startMonitor(url, onLine) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port || 6379), hostname, () => socket.write('MONITOR\r\n'));
    let buf = '';
    let ok = false;
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (!ok) {
          ok = line === '+OK';
          if (ok) resolve(socket);
          else reject(new Error(`MONITOR answered ${line}`));
          continue;
        }
        const m = /^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]*)"/.exec(line);
        if (m) onLine({ source: m[1], cmd: m[2].toLowerCase() });
      }
    });
  });
}

/** Every MONITOR line and the INFO commandstats delta while `action` runs (plus a short tail). */
async function monitorWindow(redis, action, tailMs = 500) {
  const lines = [];
  const monitor = await startMonitor(redis.url, (line) => lines.push(line));
  const before = await commandStats(redis.admin);
  const t0 = performance.now();
  await action();
  await sleep(tailMs);
  const ms = performance.now() - t0;
  const after = await commandStats(redis.admin);
  monitor.destroy();
  return { lines, stats: commandDelta(before, after), ms };
}

/**
 * Counts per role from MONITOR lines. `roles` maps a client's port to a role name; clients of no
 * role (this script's own polling and INFO) are `bench`, script-internal commands are `lua`.
 * A MULTI … EXEC block is one round trip; its commands still count as commands.
 */
function tally(lines, roles) {
  const out = {};
  const inMulti = new Set();
  const of = (role) => (out[role] ??= { roundTrips: 0, commands: 0, byCommand: {} });
  for (const { cmd, source } of lines) {
    const role = source === 'lua' ? 'lua' : (roles.get(Number(source.split(':').at(-1))) ?? 'bench');
    const t = of(role);
    t.commands++;
    t.byCommand[cmd] = (t.byCommand[cmd] ?? 0) + 1;
    if (role === 'lua') continue;
    if (cmd === 'multi') inMulti.add(source);
    else if (cmd === 'exec' || cmd === 'discard') {
      inMulti.delete(source);
      t.roundTrips++;
    } else if (!inMulti.has(source)) t.roundTrips++;
  }
  return out;
}

/** (busy − idle) ÷ n, role by role and command by command. */
function perItem(busy, idle, n) {
  const out = {};
  for (const role of new Set([...Object.keys(busy), ...Object.keys(idle)])) {
    const b = busy[role] ?? { roundTrips: 0, commands: 0, byCommand: {} };
    const i = idle[role] ?? { roundTrips: 0, commands: 0, byCommand: {} };
    const byCommand = {};
    for (const c of new Set([...Object.keys(b.byCommand), ...Object.keys(i.byCommand)])) {
      const v = ((b.byCommand[c] ?? 0) - (i.byCommand[c] ?? 0)) / n;
      if (Math.abs(v) >= 0.005) byCommand[c] = Number(v.toFixed(2));
    }
    out[role] = { roundTrips: (b.roundTrips - i.roundTrips) / n, commands: (b.commands - i.commands) / n, byCommand };
  }
  return out;
}
function statsPerItem(busy, idle, benchLines, n) {
  const out = {};
  let total = 0;
  for (const c of new Set([...Object.keys(busy), ...Object.keys(idle)])) {
    if (c === 'monitor') continue;
    const v = ((busy[c] ?? 0) - (idle[c] ?? 0) - (benchLines[c] ?? 0)) / n;
    total += v;
    if (Math.abs(v) >= 0.005) out[c] = Number(v.toFixed(2));
  }
  return { total, byCommand: out };
}

async function rolesOf(procs) {
  const roles = new Map();
  for (const [role, pid] of Object.entries(procs)) for (const port of await procLocalPorts(pid)) roles.set(port, role);
  return roles;
}

/** Measures `run` (resolving when its n items are done), then an idle window as long; per item. */
async function measure(redis, procs, n, run) {
  const busy = await monitorWindow(redis, run);
  const idle = await monitorWindow(redis, () => sleep(busy.ms - 500));
  const roles = await rolesOf(procs);
  const [b, i] = [tally(busy.lines, roles), tally(idle.lines, roles)];
  const per = perItem(b, i, n);
  const benchBusy = b.bench?.byCommand ?? {};
  const benchIdle = i.bench?.byCommand ?? {};
  // the bench's own polling is in commandstats too: taken out of each window before the difference
  const minusBench = (stats, bench) => Object.fromEntries(Object.entries(stats).map(([c, v]) => [c, v - (bench[c] ?? 0)]));
  const withScripts = statsPerItem(minusBench(busy.stats, benchBusy), minusBench(idle.stats, benchIdle), {}, n);
  return { per, withScripts, windowMs: busy.ms };
}

export async function benchRoundtrips() {
  const n = QUICK ? 100 : 300;
  const redis = await benchRedis();
  if (!redis.private) console.log('  roundtrips: no private Redis, MONITOR sees other clients too (counted as bench)');
  const stack = await keptStack(redis, 'noop', { worker: { images: 'noop', png: 'jpeg' } });
  let ours;
  {
    const url = `${stack.base}/v1/generations`;
    const completedKey = shared.keysFor(stack.prefix).tenantGenerations('default', 'completed');
    const start = await redis.admin.zcard(completedKey);
    await load({ url, n: 20, concurrency: 4, expectStatus: 202, topic: 'warm' });
    await until(async () => (await redis.admin.zcard(completedKey)) >= start + 20, 'warm-up generations');
    await sleep(1000);
    ours = await measure(redis, { api: stack.api.pid, worker: stack.worker.pid }, n, async () => {
      await load({ url, n, concurrency: 4, expectStatus: 202, topic: 'rt' });
      await until(async () => (await redis.admin.zcard(completedKey)) >= start + 20 + n, 'generations to complete');
    });
  }
  const bare = await startBare(redis);
  let raw;
  try {
    await bare.run(20);
    raw = await measure(redis, { bare: bare.child.pid }, n, () => bare.run(n));
  } finally {
    await bare.close();
  }
  const api = ours.per.api ?? { roundTrips: 0, commands: 0 };
  const worker = ours.per.worker ?? { roundTrips: 0, commands: 0 };
  const lua = ours.per.lua?.commands ?? 0;
  const rawTop = raw.per.bare?.roundTrips ?? 0;
  const how = `plain POST (202), ${n} generations, 4 clients, no-op image stage; MONITOR on a private Redis, less an idle window as long (${Math.round(ours.windowMs)} ms)`;
  const details = { how, ours: ours.per, oursWithScripts: ours.withScripts, bare: raw.per, bareWithScripts: raw.withScripts };
  report('roundtrips', 'Redis round trips per generation, API + worker (top-level commands, MULTI…EXEC = 1)', api.roundTrips + worker.roundTrips, 'round trips', rawTop, how, {
    baselineIs: 'bare BullMQ: queue.add of the same job → Worker (concurrency 32) → complete, one process',
    target: { on: 'value', op: '<=', value: 15 },
    details,
  });
  report('roundtrips', 'of which API', api.roundTrips, 'round trips', undefined, `top-level commands ${api.commands.toFixed(1)}`);
  report('roundtrips', 'of which worker', worker.roundTrips, 'round trips', undefined, `top-level commands ${worker.commands.toFixed(1)}`);
  report('roundtrips', 'Redis commands per generation including those run inside scripts (MONITOR)', api.commands + worker.commands + lua, 'cmds', (raw.per.bare?.commands ?? 0) + (raw.per.lua?.commands ?? 0), '', { baselineIs: 'bare BullMQ add → process → complete' });
  report('roundtrips', 'same, from INFO commandstats', ours.withScripts.total, 'cmds', raw.withScripts.total, '', { baselineIs: 'bare BullMQ add → process → complete' });
  const top = (by) => Object.entries(by).sort((a, b) => b[1] - a[1]).slice(0, 5).map(([c, v]) => `${c} ${v}`).join(', ');
  console.log(`  roundtrips per generation — API: ${top(api.byCommand ?? {})}; worker: ${top(worker.byCommand ?? {})}; bare: ${top(raw.per.bare?.byCommand ?? {})}`);
}
