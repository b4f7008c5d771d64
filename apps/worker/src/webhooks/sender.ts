import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Webhook } from 'standardwebhooks';
import { Agent, request } from 'undici';
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

/**
 * Signs (Standard Webhooks) and POSTs one delivery attempt over pooled keep-alive connections.
 * Success is a 2xx within the timeout; redirects are not followed. The SSRF guard applies to the
 * address actually connected to (see publicOnlyLookup), and to literal IPs before connecting.
 */
export class WebhookSender {
  private readonly agent: Agent;
  private readonly signers = new Map<string, Webhook>();

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
    const url = new URL(req.url);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (!this.opts.allowPrivate && isIP(host) && !isPublicAddress(host)) {
      return { ok: false, error: `${host} is ${rangePhrase(host)}, which webhooks may not reach`, durationMs: 0, hostTrouble: false };
    }
    const now = new Date();
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'imagegen-webhooks/1',
      'webhook-id': req.webhookId,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': this.sign(req.secrets, req.webhookId, now, req.body),
    };
    // undici takes an emitter as the abort signal: an AbortController per request costs ~20x more
    const abort = new EventEmitter() as EventEmitter & { reason?: Error };
    let timedOut = false;
    // a plain strong timer, raced against the request: the deadline holds whatever the client does
    let expire: (err: Error) => void = () => undefined;
    const expired = new Promise<never>((_, reject) => (expire = reject));
    expired.catch(() => undefined);
    const timer = setTimeout(() => {
      const err = new DeliveryTimeout(`no answer within ${this.opts.timeoutMs} ms`);
      timedOut = true;
      abort.reason = err;
      abort.emit('abort');
      expire(err);
    }, this.opts.timeoutMs);
    try {
      const res = await Promise.race([request(url, { method: 'POST', headers, body: req.body, dispatcher: this.agent, signal: abort }), expired]);
      const status = res.statusCode;
      const durationMs = elapsed();
      // read (bounded) so the connection goes back to the pool; the answer is already decided
      void res.body.dump({ limit: MAX_RESPONSE_BYTES }).catch(() => undefined);
      if (status >= 200 && status < 300) return { ok: true, status, durationMs, hostTrouble: false };
      const retryAfter = res.headers['retry-after'];
      const retryAfterMs = parseRetryAfter(typeof retryAfter === 'string' ? retryAfter : null);
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
      if (e instanceof DeliveryTimeout || timedOut) {
        return { ok: false, error: `timed out: no answer within ${this.opts.timeoutMs} ms`, durationMs: elapsed(), hostTrouble: true };
      }
      const blocked = e.code === 'EBLOCKEDADDRESS' || e.cause?.code === 'EBLOCKEDADDRESS';
      const why = blocked ? (e.cause?.message ?? e.message) : (e.code ?? e.cause?.code ?? e.message);
      return { ok: false, error: blocked ? why : `connection failed: ${why}`, durationMs: elapsed(), hostTrouble: !blocked };
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
