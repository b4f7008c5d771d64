import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { publicBatchSchema, publicGenerationSchema, webhookEnvelopeSchema } from '@imagegen/shared';

const generationBody = webhookEnvelopeSchema(publicGenerationSchema);
const batchBody = webhookEnvelopeSchema(publicBatchSchema);

/** Why a verified body is not a webhook envelope whose `data` is the GET's answer, or undefined. */
function shapeErrorOf(payload: unknown): string | undefined {
  const body = (payload as { type?: unknown }).type === 'batch.completed' ? batchBody : generationBody;
  const parsed = body.strict().safeParse(payload);
  return parsed.success ? undefined : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
}

/** How the receiver answers one request. */
export type Answer = number | 'hang' | { status: number; headers?: Record<string, string>; delayMs?: number };

export interface Received {
  at: number;
  path: string;
  body: string;
  headers: Record<string, string>;
  /** The parsed body, if the signature verified with one of the receiver's secrets. */
  payload?: any;
  /** Set when the verified body does not match the webhook envelope with the GET's schema as `data`. */
  shapeError?: string;
  /** Which of the receiver's secrets verified it (indexes into `secrets`). */
  verifiedWith: number[];
  answeredWith: number | 'hang';
}

/**
 * A webhook endpoint on a real socket: verifies every delivery with standardwebhooks against the
 * secrets it holds, answers from a per-path script (the last answer repeats), and counts requests
 * in flight per path.
 */
export class WebhookReceiver {
  readonly received: Received[] = [];
  secrets: string[] = [];
  private readonly scripts = new Map<string, Answer[]>();
  private readonly hanging = new Set<ServerResponse>();
  private readonly inFlight = new Map<string, number>();
  readonly maxInFlight = new Map<string, number>();
  private server!: Server;
  baseUrl = '';

  static async start(host = '127.0.0.1'): Promise<WebhookReceiver> {
    const r = new WebhookReceiver();
    r.server = createServer((req, res) => void r.handle(req, res).catch(() => res.destroy()));
    r.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => r.server.listen(0, host, resolve));
    r.baseUrl = `http://${host}:${(r.server.address() as { port: number }).port}`;
    return r;
  }

  url(path: string): string {
    return `${this.baseUrl}${path}`;
  }

  /** Answers for the next requests to `path`, in order; the last one repeats. Default 200. */
  script(path: string, ...answers: Answer[]): void {
    this.scripts.set(path, answers);
  }

  on(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '/';
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
    const verifiedWith: number[] = [];
    let payload: unknown;
    this.secrets.forEach((secret, i) => {
      try {
        payload = new Webhook(secret).verify(body, headers);
        verifiedWith.push(i);
      } catch {
        // not signed with this one
      }
    });
    const script = this.scripts.get(path) ?? [];
    const answer: Answer = (script.length > 1 ? script.shift() : script[0]) ?? 200;
    const shapeError = verifiedWith.length ? shapeErrorOf(payload) : undefined;
    this.received.push({ at: Date.now(), path, body, headers, payload, ...(shapeError ? { shapeError } : {}), verifiedWith, answeredWith: answer === 'hang' ? 'hang' : typeof answer === 'number' ? answer : answer.status });
    const now = (this.inFlight.get(path) ?? 0) + 1;
    this.inFlight.set(path, now);
    this.maxInFlight.set(path, Math.max(now, this.maxInFlight.get(path) ?? 0));
    res.on('close', () => this.inFlight.set(path, (this.inFlight.get(path) ?? 1) - 1));
    if (answer === 'hang') {
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    const { status, headers: extra, delayMs = 0 } = typeof answer === 'number' ? { status: answer, headers: {} } : answer;
    const reply = () => void (res.destroyed || res.writeHead(status, { 'Content-Type': 'text/plain', ...extra }).end('ok'));
    if (delayMs > 0) setTimeout(reply, delayMs).unref();
    else reply();
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
