import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startS3Server, useS3Credentials, type S3Server } from './support/s3';
import { ADMIN, postJson, startStack, type Stack } from './support/stack';

/**
 * The pages in a real headless Chromium (Debian's, driven by playwright-core): the gallery
 * makes a generation and shows its thumbnail, Bull Board shows the queues, /docs the
 * endpoints, none of them with a console error (a CSP violation would be one).
 * Screenshots go to test/output/.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUTPUT = path.join(__dirname, 'output');

/** A page whose console errors (CSP violations included) and page errors are collected. */
async function open(context: BrowserContext, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url, { waitUntil: 'load' });
  return { page, errors };
}

/** Waits until n elements match the selector, and checks there are no more. */
async function tileCount(page: Page, selector: string, n: number, timeout: number): Promise<void> {
  await page.locator(selector).nth(n - 1).waitFor({ timeout });
  expect(await page.locator(selector).count()).toBe(n);
}

function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

describe('pages in a browser', () => {
  let stack: Stack;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(OUTPUT, { recursive: true });
    browser = await launch();
    stack = await startStack({ name: 'browser' });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('the gallery submits a topic, follows it, and shows its thumbnail (desktop and phone)', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const { page, errors } = await open(context, `${stack.baseUrl}/`);
    await page.fill('textarea[name=topic]', 'a lighthouse at dawn, waves against the rocks');
    await page.selectOption('select[name=style]', 'ILLUSTRATION');
    await page.click('#submit');
    await page.waitForSelector('.tile.completed img.loaded', { timeout: 45_000 });
    const href = await page.getAttribute('.tile.completed a.frame', 'href');
    expect(href).toMatch(new RegExp(`^${stack.baseUrl}/files/`));
    expect(await page.textContent('.tile.completed .topic-text')).toContain('lighthouse');
    await page.screenshot({ path: path.join(OUTPUT, 'gallery-desktop.png') });
    expect(errors).toEqual([]);

    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const mobile = await open(phone, `${stack.baseUrl}/`);
    await mobile.page.waitForSelector('.tile.completed img.loaded', { timeout: 20_000 });
    // nothing wider than the screen
    expect(await mobile.page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await mobile.page.screenshot({ path: path.join(OUTPUT, 'gallery-phone.png'), fullPage: true });
    expect(mobile.errors).toEqual([]);
    await Promise.all([context.close(), phone.close()]);
  }, 90_000);

  it('the gallery says which field was refused and why', async () => {
    const context = await browser.newContext();
    const { page, errors } = await open(context, `${stack.baseUrl}/`);
    await page.fill('textarea[name=topic]', 'bell\u0007 in the topic');
    await page.click('#submit');
    // before: only "The body has 1 invalid field"
    // (a locator: the page's CSP forbids the eval a waitForFunction with a string would need)
    await page.locator('#message').filter({ hasText: /topic: must not contain control characters/ }).waitFor({ timeout: 10_000 });
    expect(await page.textContent('#message')).toMatch(/^The body has 1 invalid field \(topic: must not contain control characters/);
    // the refused request is the only error the console shows
    expect(errors.filter((e) => !/status of 400/.test(e))).toEqual([]);
    await context.close();
  });

  it('the gallery takes a topic up to the limit in characters, as the API counts them, and refuses one past it', async () => {
    const context = await browser.newContext();
    const { page, errors } = await open(context, `${stack.baseUrl}/`);
    // 3,000 emoji: 6,000 UTF-16 units, within the 4,000 characters the API takes (before: cut to 2,000 by maxlength)
    const waves = '\u{1F30A}'.repeat(3000);
    await page.fill('textarea[name=topic]', waves);
    await page.click('#submit');
    await page.locator('#message').filter({ hasText: /^Queued/ }).waitFor({ timeout: 10_000 });
    const listed = (await (await fetch(`${stack.baseUrl}/v1/generations?limit=1`)).json()) as { data: { request: { topic: string } }[] };
    expect([...(listed.data[0]?.request.topic ?? '')].length).toBe(3000);
    // one character past the limit is refused in the page, and nothing is sent
    await page.fill('textarea[name=topic]', 'a'.repeat(4001));
    const sent: string[] = [];
    page.on('request', (r) => r.method() === 'POST' && sent.push(r.url()));
    await page.click('#submit');
    expect(await page.locator('textarea[name=topic]').evaluate((t) => (t as unknown as { validationMessage: string }).validationMessage)).toMatch(/at most 4000 characters/);
    expect(sent).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('the gallery still finds recent generations behind index entries whose records are gone', async () => {
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'behind stale entries' }, { Prefer: 'wait=30' })).body.status).toBe('completed');
    // newer entries whose records expired before the retention sweep came by: more than one page looks at
    const stale = Array.from({ length: 1500 }, (_, i) => `gen_zz${String(i).padStart(6, '0')}`);
    await stack.redis.zadd(stack.api.keys.tenantGenerations('default'), ...stale.flatMap((id) => [0, id]));
    try {
      const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
      const { page, errors } = await open(context, `${stack.baseUrl}/`);
      await page.waitForSelector('.tile.completed img.loaded', { timeout: 20_000 });
      expect(await page.isHidden('#empty')).toBe(true);
      expect(errors).toEqual([]);
      await context.close();
    } finally {
      await stack.redis.zrem(stack.api.keys.tenantGenerations('default'), ...stale);
    }
  }, 60_000);

  it('an EventSource on a finished generation hears its end once, then stops', async () => {
    const done = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'heard to the end' }, { Prefer: 'wait=30' });
    expect(done.body.status).toBe('completed');
    const context = await browser.newContext();
    const { page, errors } = await open(context, `${stack.baseUrl}/`);
    // EventSource reconnects whenever a stream closes; only a 204 (or an error status) stops it
    const heard = await page.evaluate(`new Promise((resolve) => {
      const es = new EventSource('v1/generations/${done.body.id as string}/events');
      const ends = [];
      es.addEventListener('generation.completed', (e) => ends.push(e.lastEventId));
      es.onerror = () => es.readyState === EventSource.CLOSED && resolve({ ends, closed: true });
      setTimeout(() => { es.close(); resolve({ ends, closed: false }); }, 12000);
    })`);
    expect(heard).toEqual({ ends: ['end'], closed: true });
    expect(errors).toEqual([]);
    await context.close();
  }, 60_000);

  it('Bull Board, with the operator credentials, shows the generate queue', async () => {
    const context = await browser.newContext({ httpCredentials: { username: ADMIN.user, password: ADMIN.password }, viewport: { width: 1280, height: 860 } });
    // every request the page makes, to see that none leaves this origin
    const asked: string[] = [];
    context.on('request', (r) => asked.push(r.url()));
    const { page, errors } = await open(context, `${stack.baseUrl}/admin/queues`);
    await page.getByText('generate', { exact: true }).first().waitFor({ timeout: 20_000 });
    await page.getByText('webhooks', { exact: true }).first().waitFor({ timeout: 5_000 });
    await page.screenshot({ path: path.join(OUTPUT, 'bull-board.png') });
    expect(errors).toEqual([]);
    expect(asked.filter((url) => !url.startsWith(`${stack.baseUrl}/`) && !url.startsWith('data:'))).toEqual([]);
    await context.close();
  }, 60_000);

  it('/docs shows the endpoints, asked with a trailing slash too', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const { page, errors } = await open(context, `${stack.baseUrl}/docs`);
    await page.getByText('/v1/generations/{id}/events').first().waitFor({ timeout: 20_000 });
    await page.getByText('/api/odin/v3/tools/image-generator').first().waitFor({ timeout: 5_000 });
    await page.screenshot({ path: path.join(OUTPUT, 'docs.png') });
    expect(errors).toEqual([]);
    const slash = await open(context, `${stack.baseUrl}/docs/`);
    await slash.page.getByText('/v1/generations/{id}/events').first().waitFor({ timeout: 20_000 });
    expect(slash.page.url()).toBe(`${stack.baseUrl}/docs`);
    expect(slash.errors).toEqual([]);
    await context.close();
  }, 60_000);
});

/** A browser and a stack with no worker yet (what is submitted stays queued), for one describe block. */
function browserAndIdleStack(name: string, env: Record<string, string> = {}): { browser: () => Browser; stack: () => Stack } {
  let stack: Stack | undefined;
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launch();
    stack = await startStack({ name, worker: false, env });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });
  return { browser: () => browser as Browser, stack: () => stack as Stack };
}

describe('the gallery with many generations unfinished', () => {
  const env = browserAndIdleStack('browser-busy');

  it('still submits with ten tiles unfinished, and settles every tile once a worker runs', async () => {
    const [stack, browser] = [env.stack(), env.browser()];
    const queued: string[] = [];
    for (let i = 0; i < 10; i++) queued.push((await postJson(`${stack.baseUrl}/v1/generations`, { topic: `waiting ${i}` })).body.id as string);
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const { page, errors } = await open(context, `${stack.baseUrl}/`);
    await tileCount(page, '.tile.queued', 10, 20_000);
    // one stream per tile would hold every connection the browser opens to the host, and this would never be answered
    await page.fill('textarea[name=topic]', 'submitted while ten wait');
    await page.click('#submit');
    await tileCount(page, '.tile.queued', 11, 15_000);
    expect(await page.textContent('#message')).toMatch(/Queued/);
    // every tile follows its generation to the end, streamed or polled
    await stack.startWorker();
    await tileCount(page, '.tile.completed img.loaded', 11, 60_000);
    for (const id of queued) expect(await page.getAttribute(`#tile-${id}`, 'data-status')).toBe('completed');
    expect(errors).toEqual([]);
    await context.close();
  }, 120_000);
});

describe('the gallery when its event streams fail', () => {
  const env = browserAndIdleStack('browser-nostream', { API_KEYS: 'acme:sk-gallery-key' });

  it('polls the tiles instead, opens no failing stream again, and goes on after the key is saved again', async () => {
    const [stack, browser] = [env.stack(), env.browser()];
    for (let i = 0; i < 5; i++) await postJson(`${stack.baseUrl}/v1/generations`, { topic: `unstreamed ${i}` }, { Authorization: 'Bearer sk-gallery-key' });
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    // every stream answered at once with a 503 (a proxy that does not pass them, say)
    let streams = 0;
    await context.route(/\/v1\/generations\/[^/]+\/events$/, (route) => {
      streams++;
      return route.fulfill({ status: 503, contentType: 'application/problem+json', body: '{"status":503,"title":"Service unavailable","detail":"no streams here"}' });
    });
    const { page } = await open(context, `${stack.baseUrl}/`);
    const saveKey = async () => {
      // the button shows once the page has read its config, and by then a page without a key has opened the panel itself
      await page.waitForSelector('#key-button', { state: 'visible' });
      if (await page.isHidden('#key-panel')) await page.click('#key-button');
      await page.fill('#key-form input[name=key]', 'sk-gallery-key');
      await page.click('#key-form button[type=submit]');
      await tileCount(page, '.tile.queued', 5, 20_000);
    };
    await saveKey();
    // the list loaded afresh: its tiles are followed from scratch
    await saveKey();
    await new Promise((resolve) => setTimeout(resolve, 4000));
    // each tile's stream tried once per list, not again and again
    expect(streams).toBeGreaterThanOrEqual(2);
    expect(streams).toBeLessThanOrEqual(10);
    await stack.startWorker();
    await tileCount(page, '.tile.completed', 5, 60_000);
    expect(streams).toBeLessThanOrEqual(10);
    await context.close();
  }, 120_000);
});

describe('the gallery with its files in a bucket (S3_PUBLIC_BASE_URL)', () => {
  let s3: S3Server;
  let stack: Stack;
  let browser: Browser;
  beforeAll(async () => {
    useS3Credentials();
    browser = await launch();
    s3 = await startS3Server();
    stack = await startStack({ name: 'browser-s3', env: { ...s3.env(), S3_PUBLIC_BASE_URL: s3.bucketUrl, THUMBNAIL_SIZES: '256' } });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    await s3?.destroy();
  });

  it('shows the thumbnails from the bucket', async () => {
    const made = await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'a thumbnail from the bucket' }, { Prefer: 'wait=60' });
    expect(made.body.result.thumbnails[0].url.startsWith(`${s3.bucketUrl}/`)).toBe(true);
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const { page, errors } = await open(context, `${stack.baseUrl}/`);
    const img = page.locator('.tile.completed img.loaded').first();
    await img.waitFor({ timeout: 20_000 });
    expect(await img.getAttribute('src')).toBe(made.body.result.thumbnails[0].url);
    // drawn, not just placed: the bytes came from the bucket
    expect(await img.evaluate((el) => (el as unknown as { naturalWidth: number }).naturalWidth)).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    await context.close();
  }, 90_000);
});
