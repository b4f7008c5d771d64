import { ERROR_CODES, GenerationFailure, type GeneratedImage, type GenerateContext, type GenerationRequest, type GeneratorProvider } from '@imagegen/shared';
import { classifyHttpFailure, fetchText, isHttpUrl } from './http';

/**
 * The seed protocol: POST `{ topic, style, size }` with `Authorization: <key>`, answer
 * `{ downloadUrl }`. The URL is short-lived, so the caller downloads it at once.
 */
export class AiStudiosProvider implements GeneratorProvider {
  readonly name = 'aistudios' as const;

  constructor(private readonly opts: { url: string; apiKey?: string; timeoutMs: number; maxResponseBytes: number }) {}

  async generate(request: GenerationRequest, ctx: GenerateContext): Promise<GeneratedImage> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'application/json' };
    if (this.opts.apiKey) headers.Authorization = this.opts.apiKey;
    const body = JSON.stringify({ topic: request.topic, style: request.style, size: request.size });
    const res = await fetchText(this.opts.url, { method: 'POST', headers, body }, ctx.signal, { what: 'Upstream call', timeoutMs: this.opts.timeoutMs, maxBytes: this.opts.maxResponseBytes });
    const text = res.text;
    if (!res.ok) throw classifyHttpFailure(res.status, res.headers, text, { secrets: [this.opts.apiKey] });
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // a proxy's error page in place of the answer is usually passing: worth another try
      throw new GenerationFailure(ERROR_CODES.badResponse, `Upstream answered ${res.status} with a body that is not JSON`, true);
    }
    const downloadUrl = (parsed as { downloadUrl?: unknown } | null)?.downloadUrl;
    if (!isHttpUrl(downloadUrl)) {
      throw new GenerationFailure(ERROR_CODES.badResponse, 'Upstream answer has no usable downloadUrl', false);
    }
    return { kind: 'url', url: downloadUrl };
  }
}
