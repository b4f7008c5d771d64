import { type GenerationRecord } from '@imagegen/shared';
import { generationRecord, TINY_RESULT } from './support/records';
import { eventually } from './support/net';
import { getJson, startStack, type Stack } from './support/stack';
import { WebhookReceiver } from './support/webhook-receiver';

/**
 * One generation's events reach its receiver in order: when the dispatcher reads started and
 * completed together (the worker was away, or busy), completed is sent only once started has been
 * answered, however slowly.
 */
describe('webhook order within a generation', () => {
  let receiver: WebhookReceiver;
  let stack: Stack;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    stack = await startStack({ name: 'webhook-order', worker: false, env: { WEBHOOK_ALLOW_PRIVATE: 'true' } });
    receiver.secrets = [(await getJson(`${stack.baseUrl}/v1/webhooks/secret`)).body.secret];
  });
  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
  });

  const record = (path: string): GenerationRecord =>
    generationRecord({ status: 'queued', stage: 'queued', progress: 0, attempts: 0, request: { topic: 'order', style: 'PHOTOGRAPHIC', size: 'SQUARE' }, webhook: { url: receiver.url(path), events: ['generation.started', 'generation.completed'] } });

  it('started and completed read together: completed goes out after started is answered; other generations do not wait', async () => {
    // the first request to /slow (started) is answered after 800 ms; later ones at once
    receiver.script('/slow', { status: 200, delayMs: 800 }, 200);
    const slow = record('/slow');
    const other = record('/other');
    const result = TINY_RESULT;
    for (const r of [slow, other]) {
      await stack.api.store.create(r);
      expect((await stack.api.store.start(r, 1, 'test-owner', 60_000)).outcome).toBe('ok');
      await stack.api.store.complete(r, result);
    }
    // four events wait in the outbox; one worker reads them at once, with places for two
    // attempts: the slow subject's completed must not take a place while it waits
    await stack.startWorker({ WEBHOOK_CONCURRENCY: '2' });
    await eventually(async () => (receiver.on('/slow').length === 2 && receiver.on('/other').length === 2 ? true : undefined), 15_000);
    const [started, completed] = receiver.on('/slow');
    expect([started!.payload.type, completed!.payload.type]).toEqual(['generation.started', 'generation.completed']);
    expect(completed!.at - started!.at).toBeGreaterThanOrEqual(750);
    // the other generation's events did not wait for the slow one
    expect(receiver.on('/other').map((r) => r.payload.type)).toEqual(['generation.started', 'generation.completed']);
    expect(receiver.on('/other')[1]!.at).toBeLessThan(completed!.at);
  });

  it('a started answered only after the attempt gave its place back (slower than 1 s) still lets completed go at once', async () => {
    // once the answer to a slow attempt comes, the subject's next event must start: nothing else is left to wake it
    receiver.script('/slower', { status: 200, delayMs: 1500 }, 200);
    const slower = record('/slower');
    await stack.api.store.create(slower);
    expect((await stack.api.store.start(slower, 1, 'test-owner', 60_000)).outcome).toBe('ok');
    await stack.api.store.complete(slower, TINY_RESULT);
    await eventually(async () => (receiver.on('/slower').length === 2 ? true : undefined), 10_000);
    const [started, completed] = receiver.on('/slower');
    expect([started!.payload.type, completed!.payload.type]).toEqual(['generation.started', 'generation.completed']);
    // sent once started was answered (1.5 s), not when some later event happened to free a place
    expect(completed!.at - started!.at).toBeGreaterThanOrEqual(1450);
    expect(completed!.at - started!.at).toBeLessThan(5000);
  });
});
