import { eventually, sleep } from './support/net';
import { killAllSpawned, spawnApi } from './support/processes';
import { startStack, type Stack } from './support/stack';

/**
 * An API process (the built dist) is SIGKILLed while it writes a batch submitted with an
 * Idempotency-Key. The client's repeat under that key is told to wait only while the dead
 * writer's lease runs (WRITER_LEASE_SECONDS, 30 s), then is accepted as a new batch; what the dead
 * writer wrote is removed by the feeder.
 */
describe('SIGKILL of an API process while it writes a batch', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'batch-writer-crash', worker: false, env: { RATE_LIMIT_PER_MINUTE: '100000' } });
  });
  afterAll(async () => {
    await killAllSpawned();
    await stack?.close();
  });

  it('a repeat under the same Idempotency-Key is accepted once the dead writer’s lease has run out, not 10 minutes later', async () => {
    const api = await spawnApi({ name: 'api-writer', env: { ...stack.env, PORT: '' } });
    const body = JSON.stringify({ items: Array.from({ length: 20_000 }, (_, i) => ({ topic: `written when the writer died ${i}` })) });
    const send = (baseUrl: string) =>
      fetch(`${baseUrl}/v1/batches`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'writer-died' }, body }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as { id?: string } }),
        () => ({ status: 0, body: {} as { id?: string } }),
      );
    const first = send(api.baseUrl);
    const queued = stack.api.keys.tenantGenerations('default', 'queued');
    // killed part-way through writing the items
    for (let i = 0; i < 1000 && (await stack.redis.zcard(queued)) === 0; i++) await sleep(5);
    await api.kill();
    expect((await first).status).toBe(0);
    const written = await stack.redis.zcard(queued);
    expect(written).toBeGreaterThan(0);
    expect(written).toBeLessThan(20_000);

    const killedAt = Date.now();
    const early = await send(stack.baseUrl);
    expect(early.status).toBe(409);
    let accepted: { status: number; body: { id?: string } } | undefined;
    while (Date.now() - killedAt < 45_000) {
      await sleep(1000);
      const r = await send(stack.baseUrl);
      if (r.status !== 409) {
        accepted = r;
        break;
      }
    }
    // before: 409 "still being accepted" for the 10 minutes the unconfirmed batch lived
    expect(accepted?.status).toBe(202);
    expect(Date.now() - killedAt).toBeLessThan(40_000);
    const again = await send(stack.baseUrl);
    expect([again.status, again.body.id]).toEqual([202, accepted?.body.id]);

    // the items the dead writer wrote go as soon as a worker's feeder looks (not with the orphan
    // sweep, 10,000 every 10 minutes): only the new batch's are left
    const cancelled = await fetch(`${stack.baseUrl}/v1/batches/${accepted?.body.id}`, { method: 'DELETE' });
    expect(cancelled.status).toBe(200);
    await stack.startWorker({ BATCH_FEED_INTERVAL_MS: '50' });
    const all = stack.api.keys.tenantGenerations('default');
    await eventually(async () => ((await stack.redis.zcard(all)) === 20_000 ? true : undefined), 10_000, 100);
    expect(await stack.redis.zcard(queued)).toBe(0);
  }, 90_000);
});
