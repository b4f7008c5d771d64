import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Webhook } from 'standardwebhooks';
import { Agent, type Dispatcher } from 'undici';
import { isPublicAddress, publicOnlyLookup, rangePhrase } from '@imagegen/shared';
import { parseRetryAfter } from '../providers/http';

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
}

export interface SenderOptions {
  timeoutMs: number;
  allowPrivate: boolean;
  /** Keep-alive connections kept per origin. */
  connectionsPerOrigin: number;
}

/** Response bytes read before the connection is given back (the body itself is not used). */
const MAX_RESPONSE_BYTES = 64 * 1024;

class DeliveryTimeout extends Error {}

interface Target {
  origin: string;
  /** Path and query. */
  path: string;
  /** The hostname, an IPv6 literal without its brackets. */
  host: string;
}

/**
 * Signs (Standard Webhooks) and POSTs one delivery attempt over pooled keep-alive connections.
 * Success is a 2xx within the timeout; redirects are not followed. The SSRF guard applies to the
 * address actually connected to (see publicOnlyLookup), and to literal IPs before connecting.
 */
export class WebhookSender {
  private readonly agent: Agent;
  private readonly signers = new Map<string, Webhook>();
  private readonly targets = new Map<string, Target>();

  constructor(private readonly opts: SenderOptions) {
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
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    const target = this.target(req.url);
    if (!this.opts.allowPrivate && isIP(target.host) && !isPublicAddress(target.host)) {
      return { ok: false, error: `${target.host} is ${rangePhrase(target.host)}, which webhooks may not reach`, durationMs: 0, hostTrouble: false };
    }
    const now = new Date();
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'imagegen-webhooks/1',
      'webhook-id': req.webhookId,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': this.sign(req.secrets, req.webhookId, now, req.body),
    };
    try {
      const { status, retryAfter } = await this.post(target, headers, req.body);
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
      if (e instanceof DeliveryTimeout) {
        return { ok: false, error: `timed out: no answer within ${this.opts.timeoutMs} ms`, durationMs: elapsed(), hostTrouble: true };
      }
      const blocked = e.code === 'EBLOCKEDADDRESS' || e.cause?.code === 'EBLOCKEDADDRESS';
      const why = blocked ? (e.cause?.message ?? e.message) : (e.code ?? e.cause?.code ?? e.message);
      return { ok: false, error: blocked ? why : `connection failed: ${why}`, durationMs: elapsed(), hostTrouble: !blocked };
    }
  }

  /** A URL's parts as a request needs them, parsed once per URL (a few endpoints take most deliveries). */
  private target(url: string): Target {
    let t = this.targets.get(url);
    if (!t) {
      const u = new URL(url);
      if (this.targets.size >= 10_000) this.targets.clear();
      t = { origin: u.origin, path: `${u.pathname}${u.search}`, host: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname };
      this.targets.set(url, t);
    }
    return t;
  }

  /**
   * One POST through the pool, settled by the status line: the answer is decided there, and the
   * (bounded) rest of the response is read afterwards so the connection goes back to the pool.
   * Undici's dispatcher interface directly: no response stream or abort signal is made per request.
   * A plain strong timer holds the deadline, whether the request is queued, sending or waiting.
   */
  private post(target: Target, headers: Record<string, string>, body: string): Promise<{ status: number; retryAfter: string | null }> {
    return new Promise((resolve, reject) => {
      let controller: Dispatcher.DispatchController | null = null;
      let answered = false;
      let timedOut: DeliveryTimeout | null = null;
      let received = 0;
      const timer = setTimeout(() => {
        timedOut = new DeliveryTimeout(`no answer within ${this.opts.timeoutMs} ms`);
        // a request still queued is cut when it reaches a connection (onRequestStart), before it is sent
        controller?.abort(timedOut);
        reject(timedOut);
      }, this.opts.timeoutMs);
      this.agent.dispatch(
        { origin: target.origin, path: target.path, method: 'POST', headers, body },
        {
          onRequestStart(c) {
            controller = c;
            if (timedOut) c.abort(timedOut);
          },
          onResponseStart(_c, statusCode, responseHeaders) {
            // 1xx informational answers come before the real one
            if (statusCode < 200 || answered) return;
            answered = true;
            clearTimeout(timer);
            const retryAfter = responseHeaders['retry-after'];
            resolve({ status: statusCode, retryAfter: typeof retryAfter === 'string' ? retryAfter : null });
          },
          onResponseData(c, chunk) {
            received += chunk.length;
            // a receiver answering at length loses its connection, not its answer
            if (received > MAX_RESPONSE_BYTES) c.abort(new Error('response too long'));
          },
          onResponseEnd() {},
          onResponseError(_c, err) {
            clearTimeout(timer);
            if (!answered) reject(err);
          },
        },
      );
    });
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
