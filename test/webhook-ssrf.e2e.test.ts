import { getJson, postJson, startStack, type Stack } from './support/stack';

/** The SSRF guard at submit time (WEBHOOK_ALLOW_PRIVATE unset): 400, and nothing is enqueued. */
describe('webhook URLs pointing inside are refused', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'webhook-ssrf', worker: false });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it.each([
    ['loopback', 'http://127.0.0.1:8080/hook'],
    ['a name that resolves to loopback', 'http://localhost:8080/hook'],
    ['that name with its final dot', 'http://localhost.:8080/hook'],
    ['a name under localhost (RFC 6761)', 'http://hooks.localhost/hook'],
    ['port 0', 'http://hooks.example.com:0/hook'],
    ['IPv6 loopback', 'http://[::1]/hook'],
    ['IPv4-mapped IPv6 loopback', 'http://[::ffff:127.0.0.1]/hook'],
    ['a private network', 'http://10.0.0.7/hook'],
    ['the metadata address', 'http://169.254.169.254/latest/meta-data/'],
    ['CGNAT', 'http://100.64.1.1/hook'],
    ['unspecified', 'http://0.0.0.0:3000/hook'],
    ['credentials in the URL', 'https://user:secret@hooks.example.com/hook'],
  ])('%s: %s → 400 problem+json', async (_what, url) => {
    const res = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'ssrf', webhook: { url } });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 400, errors: [{ path: 'webhook.url', message: expect.any(String) }] });
    expect(JSON.stringify(res.body)).not.toMatch(/secret/);
  });

  it('nothing was enqueued or recorded for any of them', async () => {
    const counts = await stack.api.queues.generate.getJobCounts();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
    expect((await getJson(`${stack.baseUrl}/v1/generations`)).body.data).toEqual([]);
  });
});
