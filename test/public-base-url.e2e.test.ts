import { createServer, request, type Server } from 'node:http';
import { checkResultImages } from './support/images';
import { freePort } from './support/net';
import { ADMIN, getJson, postJson, startStack, type Stack } from './support/stack';

/**
 * PUBLIC_BASE_URL with a path prefix, as behind a reverse proxy that serves the API under
 * /imagegen/ and strips the prefix: every URL handed out carries the prefix and works through
 * the proxy, while the API itself serves at /.
 */

const PREFIX = '/imagegen';

/** A reverse proxy that forwards `/imagegen/*` to the API as `/*`. */
function prefixProxy(target: () => string): Server {
  return createServer((req, res) => {
    if (!req.url?.startsWith(`${PREFIX}/`)) {
      res.writeHead(404).end();
      return;
    }
    const upstream = request(`${target()}${req.url.slice(PREFIX.length)}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
}

describe('a PUBLIC_BASE_URL with a path prefix', () => {
  let stack: Stack;
  let proxy: Server;
  let base: string;
  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}${PREFIX}`;
    proxy = prefixProxy(() => stack.baseUrl);
    await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
    // given with a trailing slash, as operators often write it
    stack = await startStack({ name: 'prefix', env: { PUBLIC_BASE_URL: `${base}/` } });
  });
  afterAll(async () => {
    await stack.close();
    proxy.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
  });

  it('prefixes every URL of a completed generation, and each works through the proxy', async () => {
    const created = await postJson(`${base}/v1/generations`, { topic: 'behind a proxy', size: 'SQUARE' }, { Prefer: 'wait=30' });
    expect(created.status).toBe(200);
    const generation = created.body;
    const location = created.headers.get('location')!;
    expect(location).toBe(`${base}/v1/generations/${generation.id}`);
    const urls = [generation.result.image.url, ...generation.result.thumbnails.map((t: { url: string }) => t.url)];
    expect(urls).toHaveLength(4);
    for (const url of urls) expect(url).toMatch(new RegExp(`^${base}/files/[A-Za-z0-9_-]+/[a-z0-9-]+\\.[a-z]+$`));
    // every image serves its bytes through the proxy
    expect(await checkResultImages(generation, 'SQUARE')).toEqual([]);
    const polled = await getJson(location);
    expect(polled.status).toBe(200);
    expect(polled.body.result.image.url).toBe(generation.result.image.url);
  });

  it('prefixes the seed endpoint’s downloadUrl and statusUrl', async () => {
    const res = await postJson(`${base}/api/odin/v3/tools/image-generator`, { topic: 'seed behind a proxy', style: 'VECTOR_IMAGE', size: 'SQUARE' });
    expect(res.status).toBe(200);
    expect(res.body.downloadUrl).toMatch(new RegExp(`^${base}/files/`));
    expect(res.body.statusUrl).toBe(`${base}/v1/generations/${res.body.id}`);
    expect((await fetch(res.body.downloadUrl)).status).toBe(200);
    expect((await getJson(res.body.statusUrl)).body.status).toBe('completed');
  });

  it('names the prefixed base in the OpenAPI servers, the docs page and the dashboard', async () => {
    const doc = await getJson(`${base}/openapi.json`);
    expect(doc.body.servers).toEqual([{ url: base }]);
    const page = await (await fetch(`${base}/docs`)).text();
    const links = [...page.matchAll(/href="([^"]+)"/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(0);
    for (const link of links) {
      expect(link).toMatch(new RegExp(`^${base}/`));
      expect((await fetch(link)).status).toBe(200);
    }
    const auth = { Authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}` };
    const board = await fetch(`${base}/admin/queues`, { headers: auth });
    expect(board.status).toBe(200);
    expect(await board.text()).toContain(`<base href="${PREFIX}/admin/queues`);
  });

  it('is served at / by the API itself: the proxy strips the prefix', async () => {
    expect((await fetch(`${stack.baseUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${stack.baseUrl}${PREFIX}/healthz`)).status).toBe(404);
  });
});
