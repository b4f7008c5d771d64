import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { ERROR_CODES, GenerationFailure, type GeneratorProvider } from '@imagegen/shared';
import { eventually, sleep } from './support/net';
import { ADMIN_AUTH, startStack, type Stack } from './support/stack';

const BIN = path.resolve(__dirname, '../apps/cli/dist/main.js');

interface Run {
  code: Promise<number | null>;
  stderr: () => string;
  kill: () => void;
  interrupt: () => void;
  signal: (signal: NodeJS.Signals) => void;
}

function run(args: string[], env: Record<string, string>): Run {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdout.resume();
  return { code: new Promise((r) => child.on('exit', (c) => r(c))), stderr: () => err, kill: () => child.kill('SIGKILL'), interrupt: () => child.kill('SIGINT'), signal: (sig) => child.kill(sig) };
}

/** The real built CLI against a real API and worker. */
describe('imagegen CLI', () => {
  let stack: Stack;
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack({ name: 'cli', worker: false, env: { RATE_LIMIT_PER_MINUTE: '100000', GENERATOR_MAX_ATTEMPTS: '1' } });
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#225588' } }).png().toBuffer();
    const provider: GeneratorProvider = {
      name: 'builtin',
      async generate(request) {
        if (request.topic.startsWith('fail')) throw new GenerationFailure(ERROR_CODES.rejected, 'refused', false);
        if (request.topic.startsWith('slow')) await sleep(300);
        if (request.topic.startsWith('linger')) await sleep(3000);
        return { kind: 'bytes', data: png, contentType: 'image/png' };
      },
    };
    await stack.startWorker({ WORKER_CONCURRENCY: '4', BATCH_FEED_WINDOW: '8', BATCH_FEED_INTERVAL_MS: '50', THUMBNAIL_SIZES: '16' }, { provider });
    dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-cli-'));
    env = { IMAGEGEN_URL: stack.baseUrl, IMAGEGEN_API_KEY: '' };
  });
  afterAll(async () => {
    await stack?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs a CSV batch into a folder: every original and results.jsonl in order', async () => {
    const csv = path.join(dir, 'prompts.csv');
    await writeFile(csv, 'topic,style,size\n' + Array.from({ length: 30 }, (_, i) => `"cat ${i}, ""quoted""",VECTOR_IMAGE,SQUARE`).join('\n') + '\n');
    const out = path.join(dir, 'out1');
    const r = run(['batch', csv, '--out', out], env);
    expect(await r.code).toBe(0);
    const results = (await readFile(path.join(out, 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(results.map((l) => l.index)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(results.every((l) => l.status === 'completed')).toBe(true);
    const files = (await readdir(out)).filter((f) => f.endsWith('.png')).sort();
    expect(files).toEqual(results.map((l) => `${String(l.index).padStart(2, '0')}-${l.id}.png`));
  });

  it('writes results.jsonl even when an image is gone from storage, and says which could not be saved', async () => {
    const txt = path.join(dir, 'gone.txt');
    await writeFile(txt, 'kept one\nkept two\nkept three\n');
    const out = path.join(dir, 'out-gone');
    const first = run(['batch', txt, '--out', out], env);
    expect(await first.code).toBe(0);
    const id = /batch (batch_[a-z0-9]+)/.exec(first.stderr())?.[1];
    const lines = (await readFile(path.join(out, 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    // one original removed from storage for good (a lifecycle rule, a hand), and the local copies lost
    const record = await stack.api.store.get(lines[1].id);
    await rm(path.join(stack.dataDir, 'files', record!.result!.image.key));
    for (const name of await readdir(out)) if (name !== '.imagegen-batch.json') await rm(path.join(out, name));
    const again = run(['batch', txt, '--out', out, '--resume', id!], env);
    expect(await again.code).toBe(1);
    expect(again.stderr()).toMatch(/1 image of completed items could not be saved \(first: Cannot download .*: 404\); results\.jsonl is written/);
    // before: no results.jsonl, on this run and every resume after it
    expect((await readFile(path.join(out, 'results.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(3);
    expect((await readdir(out)).filter((f) => f.endsWith('.png'))).toHaveLength(2);
  });

  it('exits non-zero when an item failed, and names a bad file by line', async () => {
    const txt = path.join(dir, 'some-fail.txt');
    await writeFile(txt, 'fine one\nfail two\nfine three\n');
    const r = run(['batch', txt, '--out', path.join(dir, 'out2')], env);
    expect(await r.code).toBe(2);
    expect(r.stderr()).toMatch(/1 of 3 items did not complete/);
    const bad = path.join(dir, 'bad.jsonl');
    await writeFile(bad, '{"topic":"ok"}\n{nope\n');
    const b = run(['batch', bad, '--out', path.join(dir, 'out3')], env);
    expect(await b.code).toBe(1);
    expect(b.stderr()).toMatch(/bad\.jsonl, line 2: not valid JSON/);
    expect(b.stderr()).not.toMatch(/\n\s+at /);
    // before: the list endpoint was asked, and its answer 'not what the imagegen API answers'
    const empty = run(['status', ' '], env);
    expect(await empty.code).toBe(1);
    expect(empty.stderr()).toBe('imagegen: Give the id of a generation (gen_…) or a batch (batch_…)\n');
    const wrong = run(['status', 'gen_x', '--url', 'http://127.0.0.1:1'], env);
    expect(await wrong.code).toBe(1);
    expect(wrong.stderr()).toMatch(/Cannot reach the imagegen API/);
  });

  it('names every bad line of a file in one run, its own checks and the API ones alike', async () => {
    const jsonl = path.join(dir, 'many-bad.jsonl');
    await writeFile(jsonl, Array.from({ length: 30 }, (_, i) => (i % 2 ? '{"topic":"ok"}' : `{broken ${i}`)).join('\n'));
    const local = run(['batch', jsonl, '--out', path.join(dir, 'out-many-bad')], env);
    expect(await local.code).toBe(1);
    expect(local.stderr()).toMatch(/many-bad\.jsonl has 15 bad lines:/);
    expect(local.stderr().match(/^ {2}line \d+: not valid JSON$/gm)).toHaveLength(15);
    const styles = path.join(dir, 'bad-styles.jsonl');
    await writeFile(styles, Array.from({ length: 30 }, (_, i) => `{"topic":"t ${i}","style":"NOPE"}`).join('\n'));
    const before = await stack.redis.zcard(stack.api.keys.tenantBatches('default'));
    const remote = run(['batch', styles, '--out', path.join(dir, 'out-bad-styles')], env);
    expect(await remote.code).toBe(1);
    // the --out folder it made for the batch is gone with it (before: left empty)
    expect(await readdir(path.join(dir, 'out-bad-styles')).catch((err: NodeJS.ErrnoException) => err.code)).toBe('ENOENT');
    // by the file's lines (before: by the items' places, 0.style to 29.style)
    expect(remote.stderr()).toMatch(/bad-styles\.jsonl: 30 items of 30 are invalid; nothing was enqueued\n {2}line 1: style: /);
    expect(remote.stderr().match(/^ {2}line \d+: style: /gm)).toEqual(Array.from({ length: 30 }, (_, i) => `  line ${i + 1}: style: `));
    expect(await stack.redis.zcard(stack.api.keys.tenantBatches('default'))).toBe(before);
    // so does a resume of a batch that is not there, down to the first folder it made
    const unknown = run(['batch', styles, '--out', path.join(dir, 'out-unknown', 'deep'), '--resume', 'batch_unknown'], env);
    expect(await unknown.code).toBe(1);
    expect(unknown.stderr()).toMatch(/batch_unknown was not found/);
    expect(await readdir(path.join(dir, 'out-unknown')).catch((err: NodeJS.ErrnoException) => err.code)).toBe('ENOENT');
  });

  it('refuses an --out folder it cannot write before submitting anything', async () => {
    const txt = path.join(dir, 'unwritable.txt');
    await writeFile(txt, 'never made one\nnever made two\n');
    const aFile = path.join(dir, 'a-regular-file');
    await writeFile(aFile, 'not a folder');
    const before = await stack.redis.zcard(stack.api.keys.tenantBatches('default'));
    for (const out of [aFile, path.join(aFile, 'below')]) {
      const r = run(['batch', txt, '--out', out], env);
      expect(await r.code).toBe(1);
      expect(r.stderr()).toMatch(/^imagegen: .*--out .*nothing was submitted\n$/);
      expect(r.stderr()).not.toMatch(/\n\s+at /);
    }
    expect(await stack.redis.zcard(stack.api.keys.tenantBatches('default'))).toBe(before);
  });

  it('tells, while it keeps trying an API it cannot reach, that it is retrying', async () => {
    const r = run(['generate', 'nobody listens', '--url', 'http://127.0.0.1:1', '--out', path.join(dir, 'unreached.png')], env);
    try {
      const line = await eventually(async () => /^imagegen: Cannot reach the imagegen API at http:\/\/127\.0\.0\.1:1 .*; trying again in [\d.]+ s \(1 failed try\)$/m.exec(r.stderr())?.[0], 10_000);
      expect(line).not.toContain('\n');
      expect(r.stderr()).not.toMatch(/\n\s+at /);
    } finally {
      r.kill();
      await r.code;
    }
  });

  it('refuses to submit again into a folder that holds another batch, and names the --resume that continues it', async () => {
    const txt = path.join(dir, 'twice.txt');
    await writeFile(txt, 'twice one\ntwice two\n');
    const out = path.join(dir, 'out-twice');
    const first = run(['batch', txt, '--out', out], env);
    expect(await first.code).toBe(0);
    const id = /batch (batch_[a-z0-9]+)/.exec(first.stderr())?.[1];
    expect(JSON.parse(await readFile(path.join(out, '.imagegen-batch.json'), 'utf8'))).toMatchObject({ batchId: id });
    const before = await stack.redis.zcard(stack.api.keys.tenantBatches('default'));
    const again = run(['batch', txt, '--out', out], env);
    expect(await again.code).toBe(1);
    expect(again.stderr()).toMatch(new RegExp(`^imagegen: .*${id}.*imagegen batch \\S+ --out \\S+ --resume ${id}.*nothing was submitted\\n$`));
    // a folder of results from before the state file was kept is refused too
    const older = path.join(dir, 'out-older');
    await mkdir(older);
    await writeFile(path.join(older, 'results.jsonl'), '{"index":0,"id":"gen_x","status":"completed"}\n');
    const intoOlder = run(['batch', txt, '--out', older], env);
    expect(await intoOlder.code).toBe(1);
    expect(intoOlder.stderr()).toMatch(/^imagegen: .*results of an earlier batch.*--resume.*nothing was submitted\n$/);
    expect(await stack.redis.zcard(stack.api.keys.tenantBatches('default'))).toBe(before);
    // continuing it is what the folder is for
    const resumed = run(['batch', txt, '--out', out, '--resume', id!], env);
    expect(await resumed.code).toBe(0);
    // resuming another batch into it is not: its images would mix with these, its results.jsonl replace theirs
    const other = run(['batch', txt, '--out', path.join(dir, 'out-other')], env);
    expect(await other.code).toBe(0);
    const otherId = /batch (batch_[a-z0-9]+)/.exec(other.stderr())?.[1];
    const results = await readFile(path.join(out, 'results.jsonl'), 'utf8');
    const mixed = run(['batch', txt, '--out', out, '--resume', otherId!], env);
    // before: exit 0, the folder's state and results.jsonl now the other batch's
    expect(await mixed.code).toBe(1);
    expect(mixed.stderr()).toMatch(new RegExp(`^imagegen: .*holds batch ${id}, not ${otherId}`));
    expect(await readFile(path.join(out, 'results.jsonl'), 'utf8')).toBe(results);
    expect(JSON.parse(await readFile(path.join(out, '.imagegen-batch.json'), 'utf8'))).toMatchObject({ batchId: id });
    // without its state file the folder is known by the generations it holds (before: exit 0, mixed)
    await rm(path.join(out, '.imagegen-batch.json'));
    const unmarked = run(['batch', txt, '--out', out, '--resume', otherId!], env);
    expect(await unmarked.code).toBe(1);
    expect(unmarked.stderr()).toMatch(new RegExp(`^imagegen: .*holds batch ${id}, not ${otherId}`));
    expect(await readFile(path.join(out, 'results.jsonl'), 'utf8')).toBe(results);
    // results of a generation the API does not know (expired, another tenant's) are refused too
    const intoUnknown = run(['batch', txt, '--out', older, '--resume', otherId!], env);
    expect(await intoUnknown.code).toBe(1);
    expect(intoUnknown.stderr()).toMatch(/^imagegen: .*holds results, and the API cannot tell which batch they are of/);
    // and its own batch still resumes there
    const own = run(['batch', txt, '--out', out, '--resume', id!], env);
    expect(await own.code).toBe(0);
    expect(JSON.parse(await readFile(path.join(out, '.imagegen-batch.json'), 'utf8'))).toMatchObject({ batchId: id });
  });

  /** Writes `count` slow prompts to `name`, and starts `batch` on them into `out`; once `until` holds, kills it. Answers the file and the batch id. */
  async function submitThenKill(name: string, count: number, out: string, until: () => Promise<true | undefined> = async () => true): Promise<{ txt: string; id: string }> {
    const txt = path.join(dir, name);
    await writeFile(txt, Array.from({ length: count }, (_, i) => `slow ${i}`).join('\n'));
    const first = run(['batch', txt, '--out', out], env);
    const id = await eventually(async () => /batch (batch_[a-z0-9]+)/.exec(first.stderr())?.[1]);
    await eventually(until);
    first.kill();
    await first.code;
    return { txt, id };
  }

  it('rides out connections cut mid-run: the event stream picks up where it broke off and downloads are tried again', async () => {
    const txt = path.join(dir, 'cut.txt');
    await writeFile(txt, Array.from({ length: 40 }, (_, i) => `slow cut ${i}`).join('\n'));
    const out = path.join(dir, 'out-cut');
    const r = run(['batch', txt, '--out', out], env);
    const pngs = async () => (await readdir(out).catch(() => [] as string[])).filter((f) => f.endsWith('.png')).length;
    // cut everything (the event stream, downloads in flight) three times while items keep finishing
    for (const atLeast of [1, 10, 20]) {
      await eventually(async () => ((await pngs()) >= atLeast ? true : undefined), 30_000, 20);
      stack.dropConnections();
    }
    expect(await r.code).toBe(0);
    const results = (await readFile(path.join(out, 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(results.map((l) => l.status)).toEqual(Array.from({ length: 40 }, () => 'completed'));
    expect(await pngs()).toBe(40);
    expect((await readdir(out)).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  /**
   * A proxy to the API that passes everything on; `intercept` may take over the API's answer to a
   * request (the API has acted on it) by returning true.
   */
  async function proxyTo(intercept: (req: http.IncomingMessage, answer: http.IncomingMessage, res: http.ServerResponse) => boolean) {
    const proxy = http.createServer((req, res) => {
      const upstream = http.request(`${stack.baseUrl}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        if (intercept(req, answer, res)) return;
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
      close: async () => {
        proxy.closeAllConnections();
        await new Promise((resolve) => proxy.close(resolve));
      },
    };
  }

  /** A proxy to the API that loses the answer to the first `method path` it sees (the API did act on it). */
  async function losingProxy(method: string, route: string) {
    const seen: (string | undefined)[] = [];
    const proxy = await proxyTo((req, answer, res) => {
      if (req.method !== method || req.url !== route) return false;
      seen.push(req.headers['idempotency-key'] as string | undefined);
      if (seen.length > 1) return false;
      answer.resume();
      answer.once('end', () => res.socket?.destroy());
      return true;
    });
    return { seen, ...proxy };
  }

  /** A proxy to the API that holds back the answer to the first `method path` (the API did act on it) until released. */
  async function holdingProxy(method: string, route: string) {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = false;
    const proxy = await proxyTo((req, answer, res) => {
      if (held || req.method !== method || req.url !== route) return false;
      held = true;
      void released.then(() => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      return true;
    });
    return { held: () => held, release, ...proxy };
  }

  /**
   * Runs the CLI through `proxy` and presses Ctrl-C while the API's answer to the submission is held
   * (the batch is made, its answer on its way); then lets the answer go. Answers the run, ended with
   * 130, and the batch id its resume command names.
   */
  async function interruptedWhileSubmitting(proxy: Awaited<ReturnType<typeof holdingProxy>>, args: string[]): Promise<{ r: Run; id: string | undefined }> {
    const r = run(args, { ...env, IMAGEGEN_URL: proxy.url });
    await eventually(async () => (proxy.held() ? true : undefined));
    r.interrupt();
    await eventually(async () => (/Ctrl-C again/.test(r.stderr()) ? true : undefined));
    proxy.release();
    expect(await r.code).toBe(130);
    return { r, id: /--resume (batch_[a-z0-9]+)/.exec(r.stderr())?.[1] };
  }

  it('Ctrl-C while the batch is being submitted waits for its id and prints the command that resumes it', async () => {
    const proxy = await holdingProxy('POST', '/v1/batches');
    try {
      const txt = path.join(dir, 'held.txt');
      await writeFile(txt, 'held answer one\nheld answer two\n');
      const out = path.join(dir, 'out held');
      const { r, id } = await interruptedWhileSubmitting(proxy, ['batch', txt, '--out', out]);
      expect(r.stderr()).toContain(`imagegen batch ${txt} --out '${out}' --resume ${id}`);
      expect((await fetch(`${stack.baseUrl}/v1/batches/${id}`)).status).toBe(200);
      // and the command it printed does resume it
      const again = run(['batch', txt, '--out', out, '--resume', id!], env);
      expect(await again.code).toBe(0);
      expect((await readdir(out)).filter((f) => f.endsWith('.png'))).toHaveLength(2);
    } finally {
      proxy.release();
      await proxy.close();
    }
  });

  it('Ctrl-C with --cancel while the batch is being submitted cancels it once its id is known', async () => {
    const proxy = await holdingProxy('POST', '/v1/batches');
    try {
      const txt = path.join(dir, 'held-cancel.txt');
      await writeFile(txt, Array.from({ length: 40 }, (_, i) => `slow held ${i}`).join('\n'));
      const out = path.join(dir, 'out-held-cancel');
      const { r, id } = await interruptedWhileSubmitting(proxy, ['batch', txt, '--out', out, '--cancel']);
      expect(r.stderr()).toContain(`batch ${id} cancelled`);
      const batch = (await (await fetch(`${stack.baseUrl}/v1/batches/${id}`)).json()) as { counts: { queued: number; active: number; cancelled: number } };
      expect(batch.counts.cancelled).toBeGreaterThan(0);
      expect(batch.counts.queued + batch.counts.active).toBe(0);
      expect((await readFile(path.join(out, 'results.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(40);
    } finally {
      proxy.release();
      await proxy.close();
    }
  });

  /**
   * A proxy to the API that points the URLs in its answers at itself, and answers each result file
   * download with its headers and half its bytes, then nothing more (downloads that stay in
   * progress), or with files 'gone', 404.
   */
  async function stallingProxy(files: 'stall' | 'gone' = 'stall') {
    let base = '';
    let stalled = 0;
    const proxy = await proxyTo((req, answer, res) => {
      const type = String(answer.headers['content-type'] ?? '');
      const stall = req.url!.startsWith('/files/');
      if (!stall && /event-stream/.test(type)) return false;
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        const body = Buffer.concat(chunks);
        if (stall && files === 'gone') {
          res.writeHead(404, { 'content-type': 'application/problem+json' });
          res.end(JSON.stringify({ status: 404, title: 'Not found', detail: 'File not found' }));
          return;
        }
        if (stall) {
          stalled++;
          res.writeHead(answer.statusCode!, answer.headers);
          res.write(body.subarray(0, Math.floor(body.length / 2)));
          return;
        }
        const text = Buffer.from(body.toString('utf8').split(stack.baseUrl).join(base));
        res.writeHead(answer.statusCode!, { ...answer.headers, 'content-length': String(text.length) });
        res.end(text);
      });
      return true;
    });
    base = proxy.url;
    return { stalled: () => stalled, ...proxy };
  }

  it.each([
    ['Ctrl-C', 'SIGINT', 130],
    // before: SIGTERM was not handled, the run died with its .part files left and no resume line
    ['SIGTERM', 'SIGTERM', 143],
  ] as const)('%s during downloads removes the partial files, prints the command that resumes and exits (%s: %i)', async (_name, signal, code) => {
    const proxy = await stallingProxy();
    try {
      const txt = path.join(dir, `stalled-${signal}.txt`);
      await writeFile(txt, 'stalled one\nstalled two\nstalled three\n');
      const out = path.join(dir, `out-stalled-${signal}`);
      const r = run(['batch', txt, '--out', out], { ...env, IMAGEGEN_URL: proxy.url });
      const parts = async () => (await readdir(out).catch(() => [] as string[])).filter((f) => f.endsWith('.part'));
      await eventually(async () => (proxy.stalled() === 3 && (await parts()).length === 3 ? true : undefined), 30_000);
      r.signal(signal);
      expect(await r.code).toBe(code);
      expect(await parts()).toEqual([]);
      const id = /batch (batch_[a-z0-9]+)/.exec(r.stderr())?.[1];
      expect(r.stderr()).toMatch(new RegExp(`continue with:\\n  imagegen batch \\S+ --out \\S+ --resume ${id}\\n$`));
      const again = run(['batch', txt, '--out', out, '--resume', id!], env);
      expect(await again.code).toBe(0);
      expect((await readdir(out)).filter((f) => f.endsWith('.png'))).toHaveLength(3);
    } finally {
      await proxy.close();
    }
  });

  it('a resumed run of a saved batch asks nothing about the items it already holds', async () => {
    const txt = path.join(dir, 'held.txt');
    await writeFile(txt, Array.from({ length: 12 }, (_, i) => `held ${i}`).join('\n'));
    const out = path.join(dir, 'out-held');
    const first = run(['batch', txt, '--out', out], env);
    expect(await first.code).toBe(0);
    const id = /batch (batch_[a-z0-9]+)/.exec(first.stderr())?.[1];
    // item reads, as this API process counts them
    const itemReads = async () => {
      const text = await (await fetch(`${stack.baseUrl}/metrics`, { headers: ADMIN_AUTH })).text();
      return [...text.matchAll(/^imagegen_http_requests_total\{[^}]*method="GET"[^}]*route="\/v1\/generations\/:id"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const before = await itemReads();
    const again = run(['batch', txt, '--out', out, '--resume', id!], env);
    expect(await again.code).toBe(0);
    // before: one read per item the event stream told again (12)
    expect((await itemReads()) - before).toBe(0);
    expect((await readdir(out)).filter((f) => f.endsWith('.png'))).toHaveLength(12);
  });

  it('generate interrupted while it waits names the generation it leaves running', async () => {
    const topic = `linger ${Date.now()}`;
    const r = run(['generate', topic, '--out', path.join(dir, 'lingering.png')], env);
    const [made] = await eventually(async () => {
      const { records } = await stack.api.store.list('default', { limit: 20 });
      const mine = records.filter((g) => g.request.topic === topic);
      return mine.length ? mine : undefined;
    });
    // its answer has come back by now (it is sent as soon as the generation is written)
    await sleep(500);
    r.interrupt();
    // before: it waited inside a Prefer: wait request, and Ctrl-C ended it by the signal, naming nothing
    expect(await r.code).toBe(130);
    expect(r.stderr()).toContain(`generation ${made!.id} was not saved; see: imagegen status ${made!.id}`);
  });

  it('generate with --out naming a folder saves <id>.png (and its thumbnails) in it', async () => {
    const before = await stack.redis.zcard(stack.api.keys.tenantGenerations('default'));
    const folder = path.join(dir, 'gen-folder');
    await mkdir(folder);
    const r = run(['generate', 'into a folder', '--out', folder, '--thumbnails'], env);
    expect(await r.code).toBe(0);
    const [id] = await stack.redis.zrevrange(stack.api.keys.tenantGenerations('default'), 0, 0);
    expect((await readdir(folder)).sort()).toEqual([`${id}-16.webp`, `${id}.png`]);
    expect((await sharp(await readFile(path.join(folder, `${id}.png`))).metadata()).format).toBe('png');
    // a path ending in a separator is a folder, made if need be
    const fresh = path.join(dir, 'gen-new-folder') + path.sep;
    const f = run(['generate', 'into a new folder', '--out', fresh], env);
    expect(await f.code).toBe(0);
    expect(await readdir(fresh)).toEqual([expect.stringMatching(/^gen_[a-z0-9]+\.png$/)]);
    expect(await stack.redis.zcard(stack.api.keys.tenantGenerations('default'))).toBe(before + 2);
  });

  it('generate with --out naming a .jpg file saves the PNG original as it is, and says so', async () => {
    const file = path.join(dir, 'asked.jpg');
    const r = run(['generate', 'named jpg', '--out', file], env);
    expect(await r.code).toBe(0);
    expect((await sharp(await readFile(file)).metadata()).format).toBe('png');
    // before: nothing said the file's name and its format disagree
    expect(r.stderr()).toContain(`note: the image is PNG; ${file} holds it as it is (not converted to JPG)`);
  });

  it('generate refuses an --out it cannot write before submitting, and names the generation on a failure after', async () => {
    const aFile = path.join(dir, 'gen-a-file');
    await writeFile(aFile, 'not a folder');
    const before = await stack.redis.zcard(stack.api.keys.tenantGenerations('default'));
    const refused = run(['generate', 'never made', '--out', path.join(aFile, 'x.png')], env);
    expect(await refused.code).toBe(1);
    expect(refused.stderr()).toMatch(/^imagegen: .*--out .*nothing was submitted\n$/);
    expect(await stack.redis.zcard(stack.api.keys.tenantGenerations('default'))).toBe(before);

    const proxy = await stallingProxy('gone');
    try {
      const r = run(['generate', 'made but not saved', '--out', path.join(dir, 'gen-gone.png')], { ...env, IMAGEGEN_URL: proxy.url });
      expect(await r.code).toBe(1);
      const [id] = await stack.redis.zrevrange(stack.api.keys.tenantGenerations('default'), 0, 0);
      expect(r.stderr()).toMatch(new RegExp(`^imagegen: Cannot download .*404.*${id}.*imagegen status ${id}.*\\n$`));
    } finally {
      await proxy.close();
    }
  });

  it('a submission whose answer is lost is sent again under the same Idempotency-Key: one batch, not two', async () => {
    const proxy = await losingProxy('POST', '/v1/batches');
    try {
      const txt = path.join(dir, 'lost.txt');
      await writeFile(txt, 'lost answer one\nlost answer two\n');
      const before = await stack.redis.zcard(stack.api.keys.tenantBatches('default'));
      const r = run(['batch', txt, '--out', path.join(dir, 'out-lost')], { ...env, IMAGEGEN_URL: proxy.url });
      expect(await r.code).toBe(0);
      expect(proxy.seen).toHaveLength(2);
      expect(proxy.seen[0]).toMatch(/^cli-/);
      expect(proxy.seen[1]).toBe(proxy.seen[0]);
      expect(await stack.redis.zcard(stack.api.keys.tenantBatches('default'))).toBe(before + 1);
    } finally {
      await proxy.close();
    }
  });

  it('generate, its answer lost, asks again under the same Idempotency-Key: one generation, saved', async () => {
    const proxy = await losingProxy('POST', '/v1/generations');
    try {
      const before = await stack.redis.zcard(stack.api.keys.tenantGenerations('default'));
      const file = path.join(dir, 'lost-one.png');
      const r = run(['generate', 'a lost answer', '--out', file], { ...env, IMAGEGEN_URL: proxy.url });
      expect(await r.code).toBe(0);
      expect(proxy.seen).toHaveLength(2);
      expect(proxy.seen[1]).toBe(proxy.seen[0]);
      expect(await stack.redis.zcard(stack.api.keys.tenantGenerations('default'))).toBe(before + 1);
      expect((await sharp(await readFile(file)).metadata()).format).toBe('png');
    } finally {
      await proxy.close();
    }
  });

  it('resumes after being killed, without submitting again', async () => {
    const out = path.join(dir, 'out4');
    const { txt, id } = await submitThenKill('slow.txt', 40, out, async () => ((await readdir(out).catch(() => [])).some((f) => f.endsWith('.png')) ? true : undefined));
    const before = await stack.redis.zcard(stack.api.keys.tenantBatches('default'));
    const second = run(['batch', txt, '--out', out, '--resume', id], env);
    expect(await second.code).toBe(0);
    expect(await stack.redis.zcard(stack.api.keys.tenantBatches('default'))).toBe(before);
    const results = (await readFile(path.join(out, 'results.jsonl'), 'utf8')).trim().split('\n');
    expect(results).toHaveLength(40);
    expect((await readdir(out)).filter((f) => f.endsWith('.png'))).toHaveLength(40);
  });

  it('a resumed run downloads what finished before it at once, not only when the batch ends', async () => {
    const out = path.join(dir, 'out-early');
    const { txt, id } = await submitThenKill('early.txt', 60, out, async () => ((await readdir(out).catch(() => [])).some((f) => f.endsWith('.png')) ? true : undefined));
    // what has finished by the time the run is resumed (the batch goes on meanwhile)
    await eventually(async () => ((await stack.api.batches.get(id))!.completed >= 8 ? true : undefined), 30_000, 20);
    const finished = (await (await fetch(`${stack.baseUrl}/v1/batches/${id}/results`)).text()).trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.status === 'completed');
    const files = finished.map((l) => `${String(l.index).padStart(2, '0')}-${l.id}.png`);
    const second = run(['batch', txt, '--out', out, '--resume', id], env);
    await eventually(async () => {
      const have = new Set(await readdir(out));
      return files.every((f) => have.has(f)) ? true : undefined;
    }, 30_000, 20);
    // every one of them is there while the batch still runs
    expect((await stack.api.batches.get(id))!.status).toBe('in_progress');
    expect(await second.code).toBe(0);
    expect((await readdir(out)).filter((f) => f.endsWith('.png'))).toHaveLength(60);
  });

  it('--resume with --cancel cancels that batch at once, keeps what finished, and exits non-zero', async () => {
    const out = path.join(dir, 'out5');
    const { txt, id } = await submitThenKill('to-cancel.txt', 60, out);
    const r = run(['batch', txt, '--out', out, '--resume', id, '--cancel'], env);
    expect(await r.code).toBe(2);
    expect(r.stderr()).toMatch(new RegExp(`batch ${id} cancelled`));
    const batch = (await (await fetch(`${stack.baseUrl}/v1/batches/${id}`)).json()) as { status: string; counts: { queued: number; active: number; cancelled: number } };
    expect(batch.counts.cancelled).toBeGreaterThan(0);
    expect(batch.counts.queued + batch.counts.active).toBe(0);
    const results = (await readFile(path.join(out, 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(results).toHaveLength(60);
    const completed = results.filter((l) => l.status === 'completed').length;
    expect(results.filter((l) => l.status === 'cancelled').length).toBe(batch.counts.cancelled);
    expect((await readdir(out)).filter((f) => f.endsWith('.png'))).toHaveLength(completed);
  });

  it('--resume with --cancel on a batch that has already finished downloads its results as they are', async () => {
    const out = path.join(dir, 'out7');
    const txt = path.join(dir, 'finished.txt');
    await writeFile(txt, 'done one\ndone two\n');
    const first = run(['batch', txt, '--out', path.join(dir, 'out7-first')], env);
    expect(await first.code).toBe(0);
    const id = /batch (batch_[a-z0-9]+)/.exec(first.stderr())?.[1] as string;
    const r = run(['batch', txt, '--out', out, '--resume', id, '--cancel'], env);
    expect(await r.code).toBe(0);
    expect(r.stderr()).toMatch(new RegExp(`batch ${id} had already finished: nothing to cancel`));
    const results = (await readFile(path.join(out, 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(results.map((l) => l.status)).toEqual(['completed', 'completed']);
    expect((await readdir(out)).filter((f) => f.endsWith('.png'))).toHaveLength(2);
  });

  it.each([
    ['once', 1],
    // one stop that arrives twice in a moment (as `timeout` sends it: to the process, then its group); before: the second met Node's default, the run died at once, the batch not cancelled
    ['twice in a moment', 2],
  ])('Ctrl-C %s with --cancel cancels the batch, still downloads what finished, writes results.jsonl and exits 130', async (_name, times) => {
    const txt = path.join(dir, `interrupt-${times}.txt`);
    await writeFile(txt, Array.from({ length: 60 }, (_, i) => `slow ${i}`).join('\n'));
    const out = path.join(dir, `out6-${times}`);
    const r = run(['batch', txt, '--out', out, '--cancel'], env);
    const id = await eventually(async () => /batch (batch_[a-z0-9]+)/.exec(r.stderr())?.[1]);
    await eventually(async () => ((await readdir(out).catch(() => [])).some((f) => f.endsWith('.png')) ? true : undefined));
    for (let i = 0; i < times; i++) {
      // (a moment apart: two signals sent at once are one to the kernel)
      if (i) await sleep(2);
      r.interrupt();
    }
    expect(await r.code).toBe(130);
    expect(r.stderr()).toMatch(new RegExp(`batch ${id} cancelled`));
    const batch = (await (await fetch(`${stack.baseUrl}/v1/batches/${id}`)).json()) as { counts: { queued: number; active: number; completed: number; cancelled: number } };
    expect(batch.counts.cancelled).toBeGreaterThan(0);
    expect(batch.counts.queued + batch.counts.active).toBe(0);
    const results = (await readFile(path.join(out, 'results.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(results).toHaveLength(60);
    const completed = results.filter((l) => l.status === 'completed');
    expect(completed.length).toBe(batch.counts.completed);
    expect((await readdir(out)).filter((f) => f.endsWith('.png')).sort()).toEqual(completed.map((l) => `${String(l.index).padStart(2, '0')}-${l.id}.png`).sort());
  });
});

describe('npx imagegen', () => {
  it('runs the CLI from the repository, as installed by npm ci (the bin link exists before any build)', async () => {
    const child = spawn('npx', ['--no', '--', 'imagegen', '--help'], { cwd: path.resolve(__dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    expect(await new Promise((r) => child.on('exit', r))).toBe(0);
    expect(out).toMatch(/Usage: imagegen/);
    expect(out).toMatch(/batch \[options\] <file>/);
  });
});
