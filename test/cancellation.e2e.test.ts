import { GenerationsService } from '@imagegen/api';
import type { GenerationRef } from '@imagegen/shared';
import { FakeUpstream } from './support/fake-upstream';
import { eventually } from './support/net';
import { getJson, postJson, startStack, type Stack } from './support/stack';

const del = (url: string) => fetch(url, { method: 'DELETE' }).then(async (r) => ({ status: r.status, body: (await r.json()) as any, type: r.headers.get('content-type') }));

describe('cancellation', () => {
  let upstream: FakeUpstream;
  let stack: Stack;
  beforeAll(async () => {
    upstream = await FakeUpstream.start();
    stack = await startStack({ name: 'cancel', worker: false, env: { GENERATOR: 'aistudios', GENERATOR_URL: upstream.generateUrl, GENERATOR_TIMEOUT_MS: '60000' } });
  });
  afterAll(async () => {
    await stack.close();
    await upstream.close();
  });

  it('a queued generation is cancelled at once and its job removed; a second DELETE is 409', async () => {
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'never mind' });
    expect(await stack.api.queues.generate.getJob(created.body.id)).toBeDefined();
    const res = await del(`${stack.baseUrl}/v1/generations/${created.body.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: created.body.id, status: 'cancelled', error: { code: 'cancelled' } });
    expect(await stack.api.queues.generate.getJob(created.body.id)).toBeUndefined();
    const again = await del(`${stack.baseUrl}/v1/generations/${created.body.id}`);
    expect(again.status).toBe(409);
    expect(again.type).toMatch(/problem\+json/);
  });

  it('a cancel sent again by the Redis client (its reply lost to a reconnect) answers as a cancel, not 409, and removes the job', async () => {
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'cancelled twice' });
    const id = created.body.id as string;
    const { store } = stack.api;
    // what a resend does: the script runs, its reply is lost, and it runs again, whose answer the caller gets
    const resending = Object.assign(Object.create(store) as typeof store, {
      cancel: async (ref: GenerationRef) => {
        await store.cancel(ref);
        return store.cancel(ref);
      },
    });
    const service = new GenerationsService({ ...stack.api, store: resending });
    // before: 409 "already cancelled", and the job was left in the queue
    await expect(service.cancel('default', id)).resolves.toMatchObject({ id, status: 'cancelled' });
    expect(await stack.api.queues.generate.getJob(id)).toBeUndefined();
    // a DELETE after it is still told it is too late
    expect((await del(`${stack.baseUrl}/v1/generations/${id}`)).status).toBe(409);
  });

  it('an active generation stops at once: the in-flight upstream call is aborted and the record stays cancelled', async () => {
    await stack.startWorker();
    upstream.enqueue({ kind: 'hang' });
    const callsBefore = upstream.calls.length;
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'stuck upstream' });
    await eventually(async () => (upstream.calls.length > callsBefore ? true : undefined));
    expect((await getJson(`${stack.baseUrl}/v1/generations/${created.body.id}`)).body.status).toBe('active');

    const t0 = Date.now();
    const res = await del(`${stack.baseUrl}/v1/generations/${created.body.id}`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('cancelled');
    // the worker holding the job aborts the hanging call (it would otherwise wait 60 s)
    await eventually(async () => (upstream.abortedHangs >= 1 ? true : undefined), 5000);
    const job = await eventually(async () => {
      const j = await stack.api.queues.generate.getJob(created.body.id);
      return j && (await j.getState()) === 'completed' ? j : undefined;
    }, 5000);
    expect(Date.now() - t0).toBeLessThan(5000);
    // read again: the object above may predate the completion its state reported
    const finished = await stack.api.queues.generate.getJob(job.id!);
    expect(finished?.returnvalue).toEqual({ status: 'cancelled' });
    expect(upstream.calls.length).toBe(callsBefore + 1);
    const after = (await getJson(`${stack.baseUrl}/v1/generations/${created.body.id}`)).body;
    expect(after).toMatchObject({ status: 'cancelled' });
    expect(after.result).toBeUndefined();
  });

  it('a completed generation cannot be cancelled (409) and is left intact', async () => {
    const done = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'finished' }, { Prefer: 'wait=30' });
    expect(done.body.status).toBe('completed');
    const res = await del(`${stack.baseUrl}/v1/generations/${done.body.id}`);
    expect(res.status).toBe(409);
    expect((await getJson(`${stack.baseUrl}/v1/generations/${done.body.id}`)).body.status).toBe('completed');
  });
});
