import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';

/** What the fake file host does with one image URL when it is fetched. */
export type FileBehavior =
  | { kind: 'image'; width?: number; height?: number; format?: 'png' | 'jpeg' }
  | { kind: 'html' }
  | { kind: 'oversized'; bytes: number; declareLength: boolean }
  | { kind: 'bomb' }
  | { kind: 'gone' }
  | { kind: 'slow'; chunkDelayMs: number; width?: number; height?: number }
  /** Answers 503 `failures` times, then serves the image. */
  | { kind: 'flaky'; failures: number };

/** What the fake generator does with one POST. Unscripted calls answer `ok` with a PNG. */
export type GenerateBehavior =
  | { kind: 'ok'; file?: FileBehavior; delayMs?: number }
  | { kind: 'status'; status: number; retryAfter?: string; body?: string }
  | { kind: 'hang' }
  | { kind: 'non-json' }
  | { kind: 'no-download-url' };

export interface UpstreamCall {
  at: number;
  authorization: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

export interface FileFetch {
  at: number;
  path: string;
  status: number;
}

const CRC_TABLE = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf: Buffer): number {
  let c = -1;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A real, valid 1-bit 20000×20000 PNG of ~50 KB that decodes to 400 million pixels. */
export function pngBomb(side = 20000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const row = Buffer.alloc(1 + Math.ceil(side / 8));
  const raw = Buffer.alloc(row.length * side);
  const idat = deflateSync(raw, { level: 9 });
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

/** Made once, before it is served: deflating 50 MB in the request would stall this process (and a worker in it) for as long. */
let bomb: Buffer | undefined;
function servedBomb(): Buffer {
  return (bomb ??= pngBomb());
}

export async function makeImage(width = 1024, height = 768, format: 'png' | 'jpeg' = 'png'): Promise<Buffer> {
  const img = sharp({ create: { width, height, channels: 3, background: { r: 40, g: 120, b: 200 } } });
  return format === 'png' ? img.png().toBuffer() : img.jpeg().toBuffer();
}

/**
 * Speaks the seed's protocol on a real socket: `POST /generate` with `Authorization: <key>`
 * and `{ topic, style, size }` answers `{ downloadUrl }`; each file is served once, then 404.
 */
export class FakeUpstream {
  readonly calls: UpstreamCall[] = [];
  readonly fetches: FileFetch[] = [];
  private readonly script: GenerateBehavior[] = [];
  private readonly files = new Map<string, FileBehavior>();
  private readonly hanging = new Set<ServerResponse>();
  private server!: Server;
  private seq = 0;
  baseUrl = '';
  /** Hanging calls whose connection the client closed (an aborted upstream call). */
  abortedHangs = 0;
  /** How the OpenAI-style endpoint answers `ok`. */
  openAiAnswer: 'url' | 'b64_json' = 'b64_json';
  /** The file behind an unscripted `ok` (a small image makes load tests cheap). */
  defaultFile: FileBehavior = { kind: 'image' };
  /** Encoded images by size and format: every fetch of one size serves the same bytes. */
  private readonly images = new Map<string, Promise<Buffer>>();

  static async start(): Promise<FakeUpstream> {
    const f = new FakeUpstream();
    f.server = createServer((req, res) => void f.handle(req, res).catch(() => res.destroy()));
    await new Promise<void>((r) => f.server.listen(0, '127.0.0.1', r));
    f.baseUrl = `http://127.0.0.1:${(f.server.address() as { port: number }).port}`;
    return f;
  }

  get generateUrl(): string {
    return `${this.baseUrl}/generate`;
  }

  /** Behaviours for the next POSTs, in order. */
  enqueue(...behaviors: GenerateBehavior[]): void {
    for (const b of behaviors) if (b.kind === 'ok' && b.file?.kind === 'bomb') servedBomb();
    this.script.push(...behaviors);
  }

  /** Drops scripted behaviours not consumed yet. */
  clearScript(): void {
    this.script.length = 0;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'POST' && (req.url === '/generate' || req.url === '/v1/images/generations')) return this.generate(req, res);
    if (req.method === 'GET' && req.url?.startsWith('/files/')) return this.serveFile(req.url, res);
    res.writeHead(404).end();
  }

  private async generate(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = Buffer.concat(chunks).toString('utf8');
    }
    this.calls.push({ at: Date.now(), authorization: req.headers.authorization, contentType: req.headers['content-type'], body });
    const behavior = this.script.shift() ?? { kind: 'ok' };
    switch (behavior.kind) {
      case 'ok': {
        if (behavior.delayMs) await new Promise((r) => setTimeout(r, behavior.delayMs));
        if (req.url === '/v1/images/generations') return this.answerOpenAi(res, body as { size?: string }, behavior.file);
        const name = `img-${++this.seq}-${Math.random().toString(36).slice(2)}.png`;
        this.files.set(name, behavior.file ?? this.defaultFile);
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ downloadUrl: `${this.baseUrl}/files/${name}` }));
        return;
      }
      case 'status': {
        const headers: Record<string, string> = { 'Content-Type': 'application/json' };
        if (behavior.retryAfter !== undefined) headers['Retry-After'] = behavior.retryAfter;
        res.writeHead(behavior.status, headers).end(behavior.body ?? JSON.stringify({ error: `status ${behavior.status}` }));
        return;
      }
      case 'hang':
        this.hanging.add(res);
        res.on('close', () => {
          if (this.hanging.delete(res)) this.abortedHangs++;
        });
        return;
      case 'non-json':
        res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html><body>Bad gateway</body></html>');
        return;
      case 'no-download-url':
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ status: 'ok', url: null }));
        return;
    }
  }

  private async answerOpenAi(res: ServerResponse, body: { size?: string }, file?: FileBehavior): Promise<void> {
    const [w, h] = (body.size ?? '1024x1024').split('x').map(Number);
    if (this.openAiAnswer === 'b64_json') {
      const data = await makeImage(w, h);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ created: 1, data: [{ b64_json: data.toString('base64') }] }));
      return;
    }
    const name = `oai-${++this.seq}.png`;
    this.files.set(name, file ?? { kind: 'image', width: w, height: h });
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ created: 1, data: [{ url: `${this.baseUrl}/files/${name}` }] }));
  }

  private async serveFile(url: string, res: ServerResponse): Promise<void> {
    const name = url.slice('/files/'.length);
    const behavior = this.files.get(name);
    const record = (status: number) => this.fetches.push({ at: Date.now(), path: url, status });
    if (behavior?.kind === 'flaky' && behavior.failures > 0) {
      behavior.failures--;
      record(503);
      res.writeHead(503, { 'Content-Type': 'text/plain' }).end('busy');
      return;
    }
    // a file is served once, then it is gone, as with the real upstream
    this.files.delete(name);
    if (!behavior || behavior.kind === 'gone') {
      record(404);
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    record(200);
    switch (behavior.kind) {
      case 'flaky':
      case 'image': {
        const format = behavior.kind === 'image' ? (behavior.format ?? 'png') : 'png';
        const data = behavior.kind === 'image' ? await this.image(behavior.width, behavior.height, format) : await this.image();
        res.writeHead(200, { 'Content-Type': `image/${format}`, 'Content-Length': data.length }).end(data);
        return;
      }
      case 'html':
        res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><html><body>Access denied</body></html>');
        return;
      case 'bomb': {
        const data = servedBomb();
        res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': data.length }).end(data);
        return;
      }
      case 'oversized': {
        const headers: Record<string, string | number> = { 'Content-Type': 'image/png' };
        if (behavior.declareLength) headers['Content-Length'] = behavior.bytes;
        res.writeHead(200, headers);
        const piece = Buffer.alloc(64 * 1024, 1);
        let sent = 0;
        while (sent < behavior.bytes && !res.destroyed) {
          const n = Math.min(piece.length, behavior.bytes - sent);
          if (!res.write(piece.subarray(0, n))) await new Promise((r) => res.once('drain', r));
          sent += n;
        }
        res.end();
        return;
      }
      case 'slow': {
        const data = await makeImage(behavior.width, behavior.height);
        res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': data.length });
        const step = Math.ceil(data.length / 4);
        for (let i = 0; i < data.length && !res.destroyed; i += step) {
          res.write(data.subarray(i, i + step));
          await new Promise((r) => setTimeout(r, behavior.chunkDelayMs));
        }
        res.end();
        return;
      }
    }
  }

  private image(width?: number, height?: number, format: 'png' | 'jpeg' = 'png'): Promise<Buffer> {
    const key = `${width}x${height}.${format}`;
    let data = this.images.get(key);
    if (!data) this.images.set(key, (data = makeImage(width, height, format)));
    return data;
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
