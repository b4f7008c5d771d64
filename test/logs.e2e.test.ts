import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { killAllSpawned, spawnApi, spawnWorker, type ApiProcess, type NodeProcess } from './support/processes';
import { deleteUnder, plainRedis, REDIS_URL, testPrefix } from './support/redis';

/**
 * The built API and worker log JSON lines through pino: one generation's request id shows up
 * in both processes' lines, and credentials never do.
 */

const KEY = 'sk-logs-test-key-4b1d6a7e0c';
const ADMIN_PASSWORD = 'logs-admin-password-91f3';

describe('logs of one generation across processes', () => {
  const prefix = testPrefix('logs');
  let dataDir: string;
  let api: ApiProcess;
  let worker: NodeProcess;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-logs-'));
    const env = { REDIS_URL, QUEUE_PREFIX: prefix, DATA_DIR: dataDir, API_KEYS: `acme:${KEY}`, ADMIN_USER: 'ops', ADMIN_PASSWORD, LOG_FORMAT: 'json' };
    [api, worker] = await Promise.all([spawnApi({ env }), spawnWorker({ env })]);
  });

  afterAll(async () => {
    await killAllSpawned();
    const redis = plainRedis();
    await deleteUnder(redis, prefix);
    await redis.quit();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('the request id is echoed, and tags the API and worker lines of the generation', async () => {
    const requestId = `req-${Date.now().toString(36)}`;
    const res = await fetch(`${api.baseUrl}/v1/generations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, 'x-request-id': requestId },
      body: JSON.stringify({ topic: 'a lighthouse logged at dawn' }),
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('x-request-id')).toBe(requestId);
    const { id } = (await res.json()) as { id: string };

    const finished = await worker.waitForLog((l) => l.msg === 'generation attempt finished' && l.generationId === id, 30_000);
    expect(finished).toMatchObject({ requestId, tenant: 'acme', jobId: id, attempt: 1, outcome: 'completed', service: 'worker', level: 'info' });
    const started = worker.logs().find((l) => l.msg === 'generation attempt started' && l.generationId === id);
    expect(started).toMatchObject({ requestId });

    const queued = await api.waitForLog((l) => l.msg === 'generation queued' && l.generationId === id);
    expect(queued).toMatchObject({ requestId, tenant: 'acme', service: 'api' });
    const access = await api.waitForLog((l) => l.msg === 'request completed' && l.requestId === requestId);
    expect(access).toMatchObject({ tenant: 'acme', req: { method: 'POST', path: '/v1/generations' }, res: { status: 202 } });
    expect(typeof access.durationMs).toBe('number');
  });

  it('a request its client leaves mid-upload is logged as aborted, not as completed', async () => {
    const requestId = `left-${Date.now().toString(36)}`;
    await new Promise<void>((resolve, reject) => {
      const url = new URL(`${api.baseUrl}/v1/batches`);
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${KEY}`, 'x-request-id': requestId } });
      req.on('error', () => resolve());
      // half a body, then the client goes
      req.write('{"topic":"one"}\n{"topic":"tw');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 300);
      req.on('response', () => reject(new Error('answered a body that never ended')));
    });
    const line = await api.waitForLog((l) => l.requestId === requestId && typeof l.msg === 'string' && l.msg.startsWith('request '));
    // before: "request completed"; the status is the refusal the API answered a client that had gone
    expect(line).toMatchObject({ msg: 'request aborted', res: { status: 400 } });
  });

  it('an unusable X-Request-Id is replaced by one of ours', async () => {
    const res = await fetch(`${api.baseUrl}/v1/generations?limit=1`, { headers: { authorization: `Bearer ${KEY}`, 'x-request-id': 'bad id with spaces <script>' } });
    expect(res.status).toBe(200);
    const given = res.headers.get('x-request-id');
    expect(given).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    expect(given).not.toContain('script');
    await api.waitForLog((l) => l.msg === 'request completed' && l.requestId === given);
  });

  it('no key, password or Authorization header value is ever written', async () => {
    // a failed login and an admin page too: both carry credentials in their headers
    await fetch(`${api.baseUrl}/v1/generations`, { headers: { authorization: 'Bearer sk-wrong-key-never-logged' } });
    await fetch(`${api.baseUrl}/admin/queues/`, { headers: { authorization: `Basic ${Buffer.from(`ops:${ADMIN_PASSWORD}`).toString('base64')}` } });
    await api.waitForLog((l) => l.msg === 'request completed' && (l.res as { status?: number } | undefined)?.status === 401);
    await api.waitForLog((l) => l.msg === 'request completed' && (l.req as { path?: string } | undefined)?.path === '/admin/queues/');
    for (const proc of [api, worker]) {
      const out = proc.stdout() + proc.stderr();
      expect(out.length).toBeGreaterThan(0);
      for (const secret of [KEY, 'sk-wrong-key-never-logged', ADMIN_PASSWORD, Buffer.from(`ops:${ADMIN_PASSWORD}`).toString('base64')]) expect(out).not.toContain(secret);
      expect(out.toLowerCase()).not.toContain('"authorization"');
    }
  });
});
