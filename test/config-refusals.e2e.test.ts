import net from 'node:net';
import { ENTRY_POINTS, killAllSpawned, runToExit } from './support/processes';
import { REDIS_URL, testPrefix } from './support/redis';

/**
 * The built entry points refuse a bad configuration at once: a non-zero exit and, on stderr,
 * one line per problem that says which setting is wrong and why, never echoing a secret.
 */

const SECRET = 'sk-live-do-not-print-7f3a';
const BASE_URL_REASON = 'must be an absolute http:// or https:// URL (a path prefix is fine; no query, fragment or credentials)';

const cases: Array<{ name: string; entry: keyof typeof ENTRY_POINTS; env: Record<string, string>; lines: string[] }> = [
  {
    name: 'the API with one key given to two tenants',
    entry: 'api',
    env: { API_KEYS: `acme:own-key,a:${SECRET},b:${SECRET}` },
    lines: ['Invalid configuration: API_KEYS: key given to two tenants (a, b)'],
  },
  {
    name: 'the API with a pair that is not tenant:key',
    entry: 'api',
    env: { API_KEYS: `acme:own-key,${SECRET}` },
    lines: ['Invalid configuration: API_KEYS: pair 2 is not tenant:key'],
  },
  {
    name: 'the API with a relative PUBLIC_BASE_URL',
    entry: 'api',
    env: { PUBLIC_BASE_URL: '/imagegen' },
    lines: [`Invalid configuration: PUBLIC_BASE_URL: ${BASE_URL_REASON}`],
  },
  {
    name: 'the API with a PUBLIC_BASE_URL that is not http(s)',
    entry: 'api',
    env: { PUBLIC_BASE_URL: 'ftp://files.example.com/' },
    lines: [`Invalid configuration: PUBLIC_BASE_URL: ${BASE_URL_REASON}`],
  },
  {
    name: 'a worker with GENERATOR=openai and no GENERATOR_API_KEY',
    entry: 'worker',
    env: { GENERATOR: 'openai', GENERATOR_API_KEY: '' },
    lines: ['Invalid configuration: GENERATOR_API_KEY: required when GENERATOR=openai'],
  },
  {
    name: 'a worker with a PUBLIC_BASE_URL without scheme',
    entry: 'worker',
    env: { PUBLIC_BASE_URL: 'img.example.com/imagegen' },
    lines: [`Invalid configuration: PUBLIC_BASE_URL: ${BASE_URL_REASON}`],
  },
  {
    name: 'a worker with two bad settings',
    entry: 'worker',
    env: { GENERATOR: 'openai', GENERATOR_API_KEY: '', PUBLIC_BASE_URL: 'localhost:3000' },
    lines: [`Invalid configuration: PUBLIC_BASE_URL: ${BASE_URL_REASON}`, 'Invalid configuration: GENERATOR_API_KEY: required when GENERATOR=openai'],
  },
];

describe('a bad configuration stops the process with a one-line reason', () => {
  afterAll(() => killAllSpawned());

  it.each(cases)('$name', async ({ entry, env, lines }) => {
    const run = await runToExit(ENTRY_POINTS[entry], { REDIS_URL, QUEUE_PREFIX: testPrefix('config'), PORT: '0', LOG_LEVEL: 'info', API_KEYS: '', PUBLIC_BASE_URL: '', GENERATOR: '', ...env });
    expect(run.exit).toBeDefined();
    expect(run.exit!.code).not.toBe(0);
    expect(run.exit!.code).not.toBeNull();
    expect(run.stderr.trimEnd().split('\n')).toEqual(lines);
    expect(`${run.stdout}${run.stderr}`).not.toContain(SECRET);
  });
});

describe('a port already taken', () => {
  afterAll(() => killAllSpawned());

  it('stops the API with the reason, and never says it is listening', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const run = await runToExit(ENTRY_POINTS.api, { REDIS_URL, QUEUE_PREFIX: testPrefix('config'), PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', LOG_FORMAT: 'json', API_KEYS: '' });
      expect(run.exit?.code).toBe(1);
      const messages = run.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { msg: string; error?: string }));
      // before: 'api listening' came first, naming the taken port
      expect(messages.map((m) => m.msg)).not.toContain('api listening');
      expect(messages).toContainEqual(expect.objectContaining({ msg: 'api server error', error: expect.stringContaining('EADDRINUSE') }));
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
