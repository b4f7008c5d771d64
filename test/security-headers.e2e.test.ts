import { ADMIN, postJson, startStack, type Stack } from './support/stack';

/** Security headers on every response (pages, API, problems, files), and the gallery's assets served offline. */

const basic = `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}`;

describe('security headers and the gallery page', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'headers' });
  });
  afterAll(async () => stack?.close());

  const expectHardened = (res: Response) => {
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(csp).toContain("frame-ancestors 'none'");
    // the older header says what frame-ancestors says
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('x-powered-by')).toBeNull();
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-request-id')).toBeTruthy();
  };

  it('the gallery page, its assets and its config', async () => {
    const page = await fetch(`${stack.baseUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expectHardened(page);
    const html = await page.text();
    expect(html).toContain('gallery/gallery.js');
    // nothing loaded from elsewhere
    expect(html).not.toMatch(/(src|href)="https?:/);
    for (const [asset, type] of [['gallery/gallery.js', /javascript/], ['gallery/gallery.css', /css/], ['gallery/thumbhash.js', /javascript/]] as const) {
      const res = await fetch(`${stack.baseUrl}/${asset}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(type);
      expectHardened(res);
    }
    expect(await (await fetch(`${stack.baseUrl}/gallery/thumbhash.js`)).text()).toContain('export function thumbHashToDataURL');
    expect(await (await fetch(`${stack.baseUrl}/gallery/config.json`)).json()).toEqual({ keyRequired: false, maxTopicLength: 4000 });
  });

  it('API answers, problems, Bull Board and stored files carry them too', async () => {
    const created = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'headers on files' }, { prefer: 'wait=30' });
    expect(created.status).toBe(200);
    expectHardened(await fetch(`${stack.baseUrl}/v1/generations/${created.body.id}`));
    expectHardened(await fetch(`${stack.baseUrl}/v1/generations/gen_nope`));
    const board = await fetch(`${stack.baseUrl}/admin/queues/`, { headers: { authorization: basic } });
    expectHardened(board);
    // the board's page asks nothing of other origins (its web fonts were Google's), and its CSP lets nothing in
    expect(board.headers.get('content-security-policy')).not.toMatch(/https:/);
    const boardHtml = await board.text();
    expect(boardHtml).toContain('static/js/');
    expect(boardHtml).not.toMatch(/(src|href)="(https?:)?\/\//);
    expectHardened(await fetch(`${stack.baseUrl}/admin/queues/static/css/nope.css`, { headers: { authorization: basic } }));
    const file = await fetch(created.body.result.image.url);
    expect(file.status).toBe(200);
    expectHardened(file);
    // handed-out file URLs may be embedded by other sites
    expect(file.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
  });
});

describe('the gallery with API keys configured', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ name: 'headers-keys', worker: false, env: { API_KEYS: 'acme:sk-gallery-key' } });
  });
  afterAll(async () => stack?.close());

  it('says a key is required, without needing one to say it', async () => {
    expect(await (await fetch(`${stack.baseUrl}/gallery/config.json`)).json()).toEqual({ keyRequired: true, maxTopicLength: 4000 });
    expect((await fetch(`${stack.baseUrl}/`)).status).toBe(200);
  });
});
