import { problemSchema } from '@imagegen/shared/schemas';
import type { z } from 'zod';
import { DEFAULT_URL, loadCliEnv, type CliEnv } from './config';
import { capped, listedUnder } from './listing';

/**
 * A failure the user can act on: printed as one line, never with a stack trace. `retryable`
 * when trying again later may succeed (the API unreachable, overloaded or restarting).
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly retryable = false,
    /** The HTTP status the API answered, when it answered. */
    readonly status?: number,
    /** The problem the API answered with, when it named fields: a caller may say where they came from. */
    readonly problem?: { detail: string; errors: { path: string; message: string }[] },
  ) {
    super(message);
  }
}

/** What a failed fetch or stream says went wrong: the system's code (ECONNREFUSED, UND_ERR_SOCKET) when it names one. */
export const causeOf = (err: unknown): string => (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;

/** Answers that say "not now" rather than "no" (a 409 with Retry-After: the same request is still being handled). */
export const isTransientStatus = (status: number, retryAfter?: string | null): boolean => status === 429 || status >= 500 || (status === 409 && !!retryAfter);

export interface ClientOptions {
  url: string;
  apiKey?: string;
}

/** The imagegen HTTP API, with errors turned into plain sentences. */
export class ApiClient {
  readonly base: string;
  /** Whether the API has answered this run: a host that stops resolving after that is a blip, tried again. */
  private answered = false;
  constructor(private readonly opts: ClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(opts.url);
    } catch {
      throw new CliError('IMAGEGEN_URL (or --url) is not a URL; set it to the API address (e.g. http://localhost:3000)');
    }
    // anything else (`localhost:3000` reads as the scheme `localhost:`) fetch refuses every time, which reads as an outage
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new CliError('IMAGEGEN_URL (or --url) must start with http:// or https:// (e.g. http://localhost:3000)');
    // they would be refused by fetch and printed in every message: the key goes in IMAGEGEN_API_KEY
    if (parsed.username || parsed.password) throw new CliError('IMAGEGEN_URL (or --url) must not carry a user or password; give the API key in IMAGEGEN_API_KEY or --api-key');
    this.base = parsed.toString().replace(/\/$/, '');
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.opts.apiKey ? { Authorization: `Bearer ${this.opts.apiKey}` } : {}), ...extra };
  }

  async request(path: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { ...init, headers: this.headers(init.headers) });
    } catch (err) {
      const cause = causeOf(err);
      // a host that never resolved is most likely a mistyped address: said at once, not tried for minutes
      const unknownHost = cause === 'ENOTFOUND' && !this.answered;
      throw new CliError(`Cannot reach the imagegen API at ${this.base} (${unknownHost ? 'no such host' : cause}); check IMAGEGEN_URL or --url`, 1, !unknownHost);
    }
    this.answered = true;
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    let problem: Partial<z.output<typeof problemSchema>> = {};
    try {
      problem = problemSchema.partial().parse(JSON.parse(text));
    } catch {
      // not a problem document: not our API
    }
    const transient = isTransientStatus(res.status, res.headers.get('retry-after'));
    if (res.status === 401) throw new CliError('The API key was refused; check IMAGEGEN_API_KEY or --api-key');
    if (!problem.detail) throw new CliError(`${this.base} answered ${res.status} and does not look like the imagegen API; check IMAGEGEN_URL or --url`, 1, transient, res.status);
    const errors = problem.errors ?? [];
    throw new CliError(listedUnder(problem.detail, errors.map((e) => `${e.path}: ${e.message}`)), 1, transient, res.status, { detail: problem.detail, errors });
  }

  /** The answer's body as `schema` (the API's own) says it is; one that is not is reported as such. */
  async json<S extends z.ZodType>(path: string, schema: S, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<z.output<S>> {
    const res = await this.request(path, init);
    const body: unknown = await res.json().catch(() => undefined);
    return answerAs(schema, body, `${this.base} (${path})`);
  }
}

/** `value`, read as `schema`; a CliError naming `from` when it does not match. */
export function answerAs<S extends z.ZodType>(schema: S, value: unknown, from: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = capped(parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)).join('; ');
  throw new CliError(`${from} answered something that is not what the imagegen API answers (${issues}); check IMAGEGEN_URL or --url`);
}

/** Client from the environment (parsed once by the config module), flags winning. */
export function clientFrom(flags: { url?: string; apiKey?: string }, env: CliEnv = loadCliEnv()): ApiClient {
  const apiKey = flags.apiKey ?? env.IMAGEGEN_API_KEY;
  return new ApiClient({ url: flags.url ?? env.IMAGEGEN_URL ?? DEFAULT_URL, ...(apiKey ? { apiKey } : {}) });
}
