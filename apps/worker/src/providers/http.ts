import { ERROR_CODES, GenerationFailure, type ErrorCode } from '@imagegen/shared';

const WEEKDAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '\\d{2}:\\d{2}:\\d{2}';
/**
 * The three forms of an HTTP date (RFC 9110 5.6.7): IMF-fixdate, RFC 850 and asctime. Date.parse
 * alone takes almost anything with a year in it ('soon 2099' is 1 January 2099).
 */
const HTTP_DATE = new RegExp(
  `^(?:${WEEKDAY}, \\d{1,2} ${MONTH} \\d{4} ${TIME} GMT|${WEEKDAY}[a-z]*, \\d{2}-${MONTH}-\\d{2} ${TIME} GMT|${WEEKDAY} ${MONTH} +\\d{1,2} ${TIME} \\d{4})$`,
  'i',
);

/** Parses Retry-After (delta-seconds or an HTTP date) into milliseconds; anything else is no Retry-After. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  if (!HTTP_DATE.test(trimmed)) return undefined;
  // asctime names no zone, and Date.parse would read it in this host's: HTTP dates are GMT
  const date = Date.parse(/GMT$/i.test(trimmed) ? trimmed : `${trimmed} GMT`);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const CONTENT_POLICY = /content[_ -]?policy|safety system|moderation|nsfw/i;

/** Tokens that look like credentials (a bearer token, an `sk-…` key), wherever a body quotes them. */
const CREDENTIALS = /\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}|\b(sk|pk|rk|key)[-_][A-Za-z0-9._-]{8,}/gi;

export interface FailureQuoting {
  /** Names the answering side in the message ('Upstream' unless said otherwise). */
  what?: string;
  /** Whether the body is worth quoting (the configured generator's own words); false for other hosts. */
  quoteBody?: boolean;
  /** What the request was sent with (the upstream's key): never quoted, in any form, whatever the status. */
  secrets?: readonly (string | undefined)[];
}

/**
 * Turns a non-2xx upstream answer into a classified failure. The configured generator's own
 * words (a content-policy reason, say) are worth passing on, and every tenant reads them in its
 * generation's error; other hosts' bodies are not. Upstreams often echo the key they were shown,
 * and that key is the operator's, not a tenant's: a refusal of it (401, 403) is not quoted at
 * all, and any other answer has it taken out, as it was sent and as JSON or a URL would escape it.
 */
export function classifyHttpFailure(status: number, headers: Headers, body: string, { what = 'Upstream', quoteBody = true, secrets = [] }: FailureQuoting = {}): GenerationFailure {
  const quoted = quoteBody && status !== 401 && status !== 403;
  const detail = quoted ? withoutUrlSecrets(withoutSecrets(body, secrets).replace(/\s+/g, ' ').trim()).replace(CREDENTIALS, '[redacted]').slice(0, 200) : '';
  const message = `${what} answered ${status}${detail ? `: ${detail}` : ''}`;
  const retryAfterMs = parseRetryAfter(headers.get('retry-after'));
  if (status === 429) return new GenerationFailure(ERROR_CODES.rateLimited, message, true, retryAfterMs);
  if (status === 408) return new GenerationFailure(ERROR_CODES.timeout, message, true, retryAfterMs);
  if (status >= 500) return new GenerationFailure(ERROR_CODES.unavailable, message, true, retryAfterMs);
  if (status === 401 || status === 403) return new GenerationFailure(ERROR_CODES.unauthorized, message, false);
  if (CONTENT_POLICY.test(body)) return new GenerationFailure(ERROR_CODES.contentPolicy, message, false);
  return new GenerationFailure(ERROR_CODES.rejected, message, false);
}

/** `text` with each secret taken out: as it is, JSON-escaped (`/` as `\/` too) and URL-encoded (either case of hex). */
function withoutSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const secret of secrets) {
    // too short to be told apart from ordinary words (no real key is)
    if (!secret || secret.length < 6) continue;
    const json = JSON.stringify(secret).slice(1, -1);
    const url = encodeURIComponent(secret);
    const forms = new Set([secret, json, json.replaceAll('/', '\\/'), url, url.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase())]);
    for (const form of forms) out = out.split(form).join('[redacted]');
  }
  return out;
}

class DeadlineExceeded extends Error {
  override readonly name = 'TimeoutError';
}

/** A deadline's timer this late (ms) says the process stood still rather than that the operation was slow. */
const PAUSE_MS = 1000;
/** How long an operation whose deadline passed while the process stood still gets to deliver what already arrived. */
const PAUSE_GRACE_MS = 1000;

export interface DeadlineOptions {
  /** Names the operation in error messages, e.g. "Upstream call". */
  what: string;
  timeoutMs: number;
  /** Code of a timeout (upstream_timeout unless said otherwise). */
  timeoutCode?: ErrorCode;
}

/**
 * Runs one outbound operation (request and body) under a deadline and the caller's signal.
 * The timer is an ordinary strong timer, and the operation is raced against it, so the
 * deadline holds even if the HTTP client drops the signal (AbortSignal.timeout and signal
 * following are both weakly held in Node and can be lost to GC). Failures come out classified.
 */
export async function withDeadline<T>(parent: AbortSignal, opts: DeadlineOptions, op: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const started = performance.now();
  let graced = false;
  const expire = () => {
    // a timer this late means the process itself stood still (SIGSTOP, a long pause): an answer
    // that came meanwhile waits in the socket and is only read after the timers, so it gets a
    // moment to be read rather than be thrown away and paid for again
    if (!graced && performance.now() - started - opts.timeoutMs > PAUSE_MS) {
      graced = true;
      timer = setTimeout(expire, PAUSE_GRACE_MS);
      return;
    }
    controller.abort(new DeadlineExceeded(`${opts.what} timed out after ${opts.timeoutMs} ms`));
  };
  let timer = setTimeout(expire, opts.timeoutMs);
  const onParentAbort = () => controller.abort(parent.reason);
  if (parent.aborted) onParentAbort();
  else parent.addEventListener('abort', onParentAbort, { once: true });
  let stop: (reason: unknown) => void = () => undefined;
  const stopped = new Promise<never>((_, reject) => (stop = reject));
  stopped.catch(() => undefined);
  if (controller.signal.aborted) stop(controller.signal.reason);
  else controller.signal.addEventListener('abort', () => stop(controller.signal.reason), { once: true });
  try {
    return await Promise.race([op(controller.signal), stopped]);
  } catch (err) {
    throw classify(err, controller.signal, parent, opts);
  } finally {
    clearTimeout(timer);
    parent.removeEventListener('abort', onParentAbort);
  }
}

function classify(err: unknown, signal: AbortSignal, parent: AbortSignal, opts: DeadlineOptions): GenerationFailure {
  if (err instanceof GenerationFailure) return err;
  if (parent.aborted) {
    return parent.reason instanceof GenerationFailure ? parent.reason : new GenerationFailure(ERROR_CODES.cancelled, `${opts.what} aborted`, false);
  }
  if (signal.aborted && signal.reason instanceof DeadlineExceeded) {
    return new GenerationFailure(opts.timeoutCode ?? ERROR_CODES.timeout, signal.reason.message, true);
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return new GenerationFailure(ERROR_CODES.connection, `${opts.what} failed: ${withoutUrlSecrets(String(why))}`, true);
}

/**
 * `text` with every URL in it cut to its origin: an error message may quote the URL it failed
 * on (fetch's do), and an upstream's image URL can carry credentials or a signature, which must
 * not reach the record, the job's log or Bull Board.
 */
export function withoutUrlSecrets(text: string): string {
  // a URL ends before the punctuation that follows it in a sentence
  return text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s'"<>]*[^\s'"<>.,;:!?)\]]/gi, (found) => {
    try {
      const u = new URL(found);
      return `${u.protocol}//${u.host}/…`;
    } catch {
      return '<url>';
    }
  });
}

/**
 * Whether an upstream's answer names an image URL that can be fetched: http(s) and well-formed.
 * One that is not (`http://[::1`, a host with a space) would fail every download from its
 * checkpoint, each attempt in turn, without the upstream being asked again.
 */
export function isHttpUrl(value: unknown): value is string {
  if (typeof value !== 'string' || !/^https?:\/\//.test(value)) return false;
  try {
    // as a download reads it: credentials that do not decode cannot be sent
    withCredentialsAsHeader(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * fetch refuses a URL with credentials in it (`https://user:pass@host/…`); a file host that
 * hands one out means HTTP Basic authentication, which is sent as the header instead.
 */
export function withCredentialsAsHeader(url: string): { target: URL; headers: Record<string, string> } {
  const target = new URL(url);
  if (!target.username && !target.password) return { target, headers: {} };
  const credentials = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
  target.username = '';
  target.password = '';
  return { target, headers: { Authorization: `Basic ${Buffer.from(credentials).toString('base64')}` } };
}

/** Reads a body up to `maxBytes`; past that the transfer is cut off with `tooLarge`. */
export async function readBody(res: Response, maxBytes: number, tooLarge: (bytes: number) => Error): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) throw tooLarge(declared);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body ?? []) {
    total += chunk.byteLength;
    if (total > maxBytes) throw tooLarge(total);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks, total);
}

/** A request and its whole body (at most `maxBytes`), within one deadline. */
export function fetchText(
  url: string,
  init: RequestInit,
  parent: AbortSignal,
  opts: DeadlineOptions & { maxBytes: number },
): Promise<{ status: number; ok: boolean; headers: Headers; text: string }> {
  return withDeadline(parent, opts, async (signal) => {
    const res = await fetch(url, { ...init, signal });
    try {
      const body = await readBody(res, opts.maxBytes, (n) => new GenerationFailure(ERROR_CODES.badResponse, `${opts.what} answer is larger than ${opts.maxBytes} bytes (${n})`, false));
      return { status: res.status, ok: res.ok, headers: res.headers, text: body.toString('utf8') };
    } catch (err) {
      await res.body?.cancel().catch(() => undefined);
      throw err;
    }
  });
}
