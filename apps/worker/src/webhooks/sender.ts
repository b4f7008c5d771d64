import { performance } from 'node:perf_hooks';
import { Webhook } from 'standardwebhooks';
import { Agent, type Dispatcher } from 'undici';
import { publicOnlyLookup, webhookTargetUrl, type WebhookTargetUrl } from '@imagegen/shared';
import { parseRetryAfter } from '../providers/http';
import { OriginGate } from './origin-gate';

export interface SendRequest {
  url: string;
  webhookId: string;
  body: string;
  /** Every secret that signs now; each adds a `v1,` signature to webhook-signature. */
  secrets: string[];
}

export interface SendResult {
  ok: boolean;
  status?: number;
  error?: string;
  durationMs: number;
  retryAfterMs?: number;
  /** The failure says the host is in trouble (timeout, connection, 429, 5xx), not just this endpoint. */
  hostTrouble: boolean;
  /** The target is one webhooks may not reach (the SSRF guard): no retry changes that. */
  refused?: true;
}

export interface SenderOptions {
  timeoutMs: number;
  allowPrivate: boolean;
  /** Keep-alive connections kept per origin. */
  connectionsPerOrigin: number;
  /**
   * The time signed into `webhook-timestamp` (ms): Redis's (see RedisClock), so a host whose own
   * clock is minutes off still signs within receivers' tolerance (±5 min in the standard's libraries).
   */
  now?: () => number;
}

/** Response bytes read before the connection is given back (the body itself is not used). */
const MAX_RESPONSE_BYTES = 64 * 1024;

class DeliveryTimeout extends Error {}

/** What a webhook-id may hold (the standard's ids are such tokens; ours are msg_<base36>). */
const WEBHOOK_ID = /^[A-Za-z0-9_.:-]{1,200}$/;

/** Undici's own header and body deadlines, which are ours too (set to the timeout): either may go off first. */
const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Undici's codes for a request refused before it left: the sender's doing, not the host's. */
const OWN_ERRORS = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_DESTROYED', 'UND_ERR_CLOSED']);

/**
 * Signs (Standard Webhooks) and POSTs one delivery attempt over pooled keep-alive connections.
 * Success is a 2xx within the timeout; redirects are not followed. The SSRF guard applies to the
 * address actually connected to (see publicOnlyLookup), and to literal IPs before connecting.
 */
export class WebhookSender {
  private readonly agent: Agent;
  private readonly signers = new Map<string, Webhook>();
  private readonly gate: OriginGate;
  /** One error for every timeout: one per request, made up front, cost about a twentieth of an attempt (its stack). */
  private readonly timeoutError: DeliveryTimeout;
  /** Less time than this left when a place frees, and a waiting request is not started. */
  private readonly lastChanceMs: number;

  constructor(private readonly opts: SenderOptions) {
    this.gate = new OriginGate(opts.connectionsPerOrigin);
    this.lastChanceMs = Math.min(50, opts.timeoutMs / 10);
    this.timeoutError = new DeliveryTimeout(`no answer within ${opts.timeoutMs} ms`);
    this.agent = new Agent({
      connections: opts.connectionsPerOrigin,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connect: { timeout: opts.timeoutMs, ...(opts.allowPrivate ? {} : { lookup: publicOnlyLookup }) },
    });
  }

  /** `webhook-signature`: one `v1,<sig>` per secret, space-separated, as the standard allows; signed by the standard's own library. */
  sign(secrets: string[], webhookId: string, at: Date, body: string): string {
    return secrets.map((s) => this.signer(s).sign(webhookId, at, body)).join(' ');
  }

  private signer(secret: string): Webhook {
    let w = this.signers.get(secret);
    if (!w) {
      if (this.signers.size >= 10_000) this.signers.clear();
      w = new Webhook(secret);
      this.signers.set(secret, w);
    }
    return w;
  }

  async send(req: SendRequest): Promise<SendResult> {
    const target = webhookTargetUrl(req.url);
    if (!this.opts.allowPrivate && target.privateLiteral) {
      return { ok: false, error: `${target.hostname} is ${target.privateLiteral}, which webhooks may not reach`, durationMs: 0, hostTrouble: false, refused: true };
    }
    if (req.secrets.length === 0) return { ok: false, error: 'no secret to sign with', durationMs: 0, hostTrouble: false };
    // refused here rather than by the pool, which would then stop using one of its connections
    if (!WEBHOOK_ID.test(req.webhookId)) return { ok: false, error: 'webhook-id is not a plain token', durationMs: 0, hostTrouble: false };
    const now = new Date(this.opts.now?.() ?? Date.now());
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'imagegen-webhooks/1',
      'webhook-id': req.webhookId,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': this.sign(req.secrets, req.webhookId, now, req.body),
    };
    // the attempt's time, and its deadline, run from here: signing is ours, not the endpoint's
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    try {
      const { status, retryAfter } = await this.post(target, headers, req.body, started + this.opts.timeoutMs);
      const durationMs = elapsed();
      if (status >= 200 && status < 300) return { ok: true, status, durationMs, hostTrouble: false };
      const retryAfterMs = parseRetryAfter(retryAfter);
      return {
        ok: false,
        status,
        error: status >= 300 && status < 400 ? `answered ${status} (redirects are not followed)` : `answered ${status}`,
        durationMs,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        hostTrouble: status === 429 || status >= 500,
      };
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
      if (e instanceof DeliveryTimeout || TIMEOUTS.has(e.code ?? '')) {
        return { ok: false, error: `timed out: no answer within ${this.opts.timeoutMs} ms`, durationMs: elapsed(), hostTrouble: true };
      }
      const blocked = e.code === 'EBLOCKEDADDRESS' || e.cause?.code === 'EBLOCKEDADDRESS';
      // undici says what went wrong in its message ('other side closed', 'bad response' for an answer
      // it cannot take, such as a 100 Continue it did not ask for), its code says which kind
      const code = e.code ?? e.cause?.code;
      const message = e.code ? e.message : (e.cause?.message ?? e.message);
      const why = blocked ? (e.cause?.message ?? e.message) : code && message && message !== code && !message.includes(code) ? `${message} (${code})` : (code ?? message);
      // a request refused before it left (a bad header, a closed sender) says nothing about the host
      const ours = blocked || OWN_ERRORS.has(e.code ?? '');
      return { ok: false, error: blocked ? why : `connection failed: ${why}`, durationMs: elapsed(), hostTrouble: !ours, ...(blocked ? { refused: true as const } : {}) };
    }
  }

  /**
   * One POST through the pool, settled by the status line: the answer is decided there, and the
   * (bounded) rest of the response is read afterwards so the connection goes back to the pool.
   * Undici's dispatcher interface directly: no response stream or abort signal is made per request.
   * One plain strong timer holds the deadline whether the request waits for a connection, is sent,
   * waits for its answer or has the answer's body read (past it, the connection is dropped).
   */
  private post(target: WebhookTargetUrl, headers: Record<string, string>, body: string, deadline: number): Promise<{ status: number; retryAfter: string | null }> {
    return new Promise((resolve, reject) => {
      let controller: Dispatcher.DispatchController | null = null;
      let answered = false;
      let expired = false;
      let done = false;
      let received = 0;
      const timeout = this.timeoutError;
      // settles first, then gives the place back (which may start the next request)
      const fail = (err: Error) => {
        reject(err);
        finish();
      };
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.gate.leave(target.origin);
      };
      const timer = setTimeout(() => {
        expired = true;
        reject(timeout);
        // still waiting for a place: it never reaches the pool
        if (!controller && this.gate.drop(target.origin, start)) return;
        // in the pool: cut now if it has a connection, else once it gets one (onRequestStart);
        // its place is given back when the pool lets go of it
        controller?.abort(timeout);
      }, Math.max(0, deadline - performance.now()));
      const start = () => {
        // a place freed moments before the deadline: too late to connect and be answered
        if (deadline - performance.now() < this.lastChanceMs) return fail(timeout);
        try {
          this.agent.dispatch(
            { origin: target.origin, path: target.path, method: 'POST', headers, body },
            {
              onRequestStart(c) {
                controller = c;
                // the deadline passed while it waited for a connection (or a timer fired a little late): nothing goes out
                if (expired || performance.now() >= deadline) {
                  reject(timeout);
                  c.abort(timeout);
                }
              },
              onResponseStart(_c, statusCode, responseHeaders) {
                // 1xx informational answers come before the real one
                if (statusCode < 200 || answered) return;
                answered = true;
                const retryAfter = responseHeaders['retry-after'];
                resolve({ status: statusCode, retryAfter: (Array.isArray(retryAfter) ? retryAfter[0] : retryAfter) ?? null });
              },
              onResponseData(c, chunk) {
                received += chunk.length;
                // a receiver answering at length loses its connection, not its answer
                if (received > MAX_RESPONSE_BYTES) c.abort(new Error('response too long'));
              },
              onResponseEnd: finish,
              onResponseError(_c, err) {
                // after the answer, an error only ends the body's reading
                if (answered) finish();
                else fail(err);
              },
            },
          );
        } catch (err) {
          fail(err as Error);
        }
      };
      this.gate.enter(target.origin, start);
    });
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
