import type { GenerationRequest } from './schemas/request';

/** What a provider hands back: a URL to download at once, or the bytes themselves. */
export type GeneratedImage =
  | { kind: 'url'; url: string }
  | { kind: 'bytes'; data: Buffer; contentType: string };

export interface GenerateContext {
  /** Aborts on timeout, cancellation and shutdown. */
  signal: AbortSignal;
}

export interface GeneratorProvider {
  readonly name: 'builtin' | 'aistudios' | 'openai';
  generate(request: GenerationRequest, ctx: GenerateContext): Promise<GeneratedImage>;
}

/** Stable error codes stored on failed generations (`error.code`). */
export const ERROR_CODES = {
  rateLimited: 'upstream_rate_limited',
  unavailable: 'upstream_unavailable',
  timeout: 'upstream_timeout',
  connection: 'upstream_connection_error',
  rejected: 'upstream_rejected',
  unauthorized: 'upstream_unauthorized',
  contentPolicy: 'content_policy_violation',
  badResponse: 'upstream_bad_response',
  downloadExpired: 'download_expired',
  downloadFailed: 'download_failed',
  downloadTimeout: 'download_timeout',
  downloadTooLarge: 'download_too_large',
  invalidImage: 'invalid_image',
  imageTooLarge: 'image_too_large',
  processingFailed: 'processing_failed',
  storageFailed: 'storage_failed',
  cancelled: 'cancelled',
  internal: 'internal_error',
  /** The queued job was removed (by hand, or trimmed) before the generation ended. */
  jobLost: 'job_lost',
} as const;
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** A classified failure: retryable ones are tried again with backoff, the rest fail at once. */
export class GenerationFailure extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryable: boolean,
    /** The upstream asked us to wait this long (Retry-After). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'GenerationFailure';
  }
}
