import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createLogger, keysFor, type Logger } from '@imagegen/shared';
import { adminPasswordInBackground, resolveAdminPassword } from './admin-password';
import { closedPort } from './__tests__/closed-port';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `igtest-admin-${process.pid}-${randomBytes(4).toString('hex')}`;
let redis: Redis;
beforeAll(() => {
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  await redis.del(keysFor(prefix).adminPassword());
  await redis.quit();
});

/** A logger that keeps what it is told. */
function recording(): Logger & { lines: { msg: string; fields?: Record<string, unknown> }[] } {
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  const keep = (msg: string, fields?: Record<string, unknown>) => void lines.push({ msg, fields });
  const logger = { lines, debug: keep, info: keep, warn: keep, error: keep, child: () => logger };
  return logger;
}

const at = (url: string) => ({ REDIS_URL: url, redis: { kind: 'single' as const, url } });
const config = { ADMIN_USER: 'ops', ADMIN_PASSWORD: undefined as string | undefined, QUEUE_PREFIX: prefix, ...at(REDIS_URL) };

it('makes one password, logged once with its value by the process that made it, and every later caller reads the same', async () => {
  const first = recording();
  const second = recording();
  const [a, b] = await Promise.all([resolveAdminPassword(config, first), resolveAdminPassword(config, second)]);
  expect(a).toBe(b);
  expect(a.length).toBeGreaterThanOrEqual(20);
  expect(await redis.get(keysFor(prefix).adminPassword())).toBe(a);
  const lines = [...first.lines, ...second.lines];
  const made = lines.filter((l) => /generated one/.test(l.msg));
  expect(made).toHaveLength(1);
  expect(made[0]!.msg).toContain(`redis-cli GET ${keysFor(prefix).adminPassword()}`);
  // the contract: unset, a random password is made and logged at start
  expect(made[0]!.msg).toContain(`user ops, password ${a},`);
  // the process that read it says so without repeating it
  expect(JSON.stringify(lines.filter((l) => !/generated one/.test(l.msg)))).not.toContain(a);
  expect(await resolveAdminPassword(config, createLogger('api', 'silent'))).toBe(a);
  // deleted: the next start makes a new one
  await redis.del(keysFor(prefix).adminPassword());
  const fresh = await resolveAdminPassword(config, createLogger('api', 'silent'));
  expect(fresh).not.toBe(a);
});

it('uses ADMIN_PASSWORD as given, without Redis', async () => {
  const port = await closedPort();
  expect(await resolveAdminPassword({ ...config, ADMIN_PASSWORD: 'given', ...at(`redis://127.0.0.1:${port}`) }, createLogger('api', 'silent'), 100)).toBe('given');
});

it('gives up on an unreachable Redis with a one-line reason that names no credentials', async () => {
  const port = await closedPort();
  const started = Date.now();
  const failure = resolveAdminPassword({ ...config, ...at(`redis://:hunter2@127.0.0.1:${port}`) }, createLogger('api', 'silent'), 1500);
  await expect(failure).rejects.toThrow(new RegExp(`^Redis at 127\\.0\\.0\\.1:${port} did not answer within 2 s \\(.*ECONNREFUSED.*\\); it keeps the shared admin password: check REDIS_URL, or set ADMIN_PASSWORD$`));
  await expect(failure).rejects.not.toThrow(/hunter2|\n/);
  // it kept trying for the time it was given
  expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
});

it('in the background, every process adopts a new password once the kept one is deleted or lost; one made and logged each time', async () => {
  const own = { ...config, QUEUE_PREFIX: `${prefix}-kept` };
  const key = keysFor(own.QUEUE_PREFIX).adminPassword();
  const logs = [recording(), recording()];
  const keepers = logs.map((log) => adminPasswordInBackground(own, log, 50));
  try {
    const settled = async (differentFrom?: string) => {
      for (let i = 0; i < 100; i++) {
        const [a, b] = keepers.map((k) => k());
        if (a !== undefined && a === b && a !== differentFrom) return a;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`the keepers did not agree: ${keepers.map((k) => k()).join(', ')}`);
    };
    const first = await settled();
    expect(await redis.get(key)).toBe(first);
    // lost with Redis's data, or deleted to reset it
    await redis.del(key);
    const second = await settled(first);
    expect(await redis.get(key)).toBe(second);
    const lines = logs.flatMap((l) => l.lines);
    const made = lines.filter((l) => /generated one/.test(l.msg));
    expect(made.map((l) => /before was deleted/.test(l.msg))).toEqual([false, true]);
    expect(made.map((l) => l.msg)).toEqual([expect.stringContaining(`password ${first},`), expect.stringContaining(`password ${second},`)]);
    const others = JSON.stringify(lines.filter((l) => !/generated one/.test(l.msg)));
    expect(others).not.toContain(first);
    expect(others).not.toContain(second);
  } finally {
    for (const k of keepers) k.stop();
    await redis.del(key);
  }
});

it('a password whose SET ran but whose reply was lost is still announced as made, with its value', async () => {
  const own = { ...config, QUEUE_PREFIX: `${prefix}-lost` };
  const key = keysFor(own.QUEUE_PREFIX).adminPassword();
  const connection = new Redis(REDIS_URL);
  await connection.del(key);
  // the first SET runs in Redis, and its reply is lost on the way back (a timeout, a reconnect)
  const realSet = connection.set.bind(connection) as (...args: unknown[]) => Promise<unknown>;
  let sets = 0;
  (connection as unknown as { set: (...args: unknown[]) => Promise<unknown> }).set = async (...args) => {
    const reply = await realSet(...args);
    if (++sets === 1) throw new Error('Command timed out');
    return reply;
  };
  const log = recording();
  try {
    const password = await resolveAdminPassword(own, log, 5000, connection as never);
    expect(await redis.get(key)).toBe(password);
    // before: only 'using the one kept in Redis', so no log of any process held the password made
    const made = log.lines.filter((l) => /generated one/.test(l.msg));
    expect(made.map((l) => l.msg)).toEqual([expect.stringContaining(`password ${password},`)]);
  } finally {
    await connection.del(key);
    connection.disconnect();
  }
});
