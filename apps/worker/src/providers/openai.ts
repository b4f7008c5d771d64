import { ERROR_CODES, GenerationFailure, type GeneratedImage, type GenerateContext, type GenerationRequest, type GeneratorProvider, type Size, type Style } from '@imagegen/shared';
import { classifyHttpFailure, fetchText, isHttpUrl } from './http';

const OPENAI_SIZES: Record<Size, string> = { LANDSCAPE: '1536x1024', PORTRAIT: '1024x1536', SQUARE: '1024x1024' };

const STYLE_PROMPTS: Record<Style, string> = {
  PHOTOGRAPHIC: 'A photorealistic photograph, natural light, high detail',
  VECTOR_IMAGE: 'A flat vector illustration with clean shapes and a limited palette',
  ILLUSTRATION: 'A hand-drawn illustration with visible strokes and texture',
  '3D': 'A 3D render with soft studio lighting and shaded volumes',
};

export function openAiPrompt(request: GenerationRequest): string {
  return `${STYLE_PROMPTS[request.style]}. Subject: ${request.topic}`;
}

/** OpenAI Images API (`POST /v1/images/generations`): answers with a URL or base64 bytes. */
export class OpenAiProvider implements GeneratorProvider {
  readonly name = 'openai' as const;

  constructor(private readonly opts: { url: string; apiKey?: string; model: string; timeoutMs: number; maxResponseBytes: number; maxImageBytes: number }) {}

  async generate(request: GenerationRequest, ctx: GenerateContext): Promise<GeneratedImage> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (this.opts.apiKey) headers.Authorization = `Bearer ${this.opts.apiKey}`;
    const body = JSON.stringify({ model: this.opts.model, prompt: openAiPrompt(request), n: 1, size: OPENAI_SIZES[request.size] });
    const res = await fetchText(this.opts.url, { method: 'POST', headers, body }, ctx.signal, { what: 'Upstream call', timeoutMs: this.opts.timeoutMs, maxBytes: this.opts.maxResponseBytes });
    const text = res.text;
    if (!res.ok) throw classifyHttpFailure(res.status, res.headers, text, { secrets: [this.opts.apiKey] });
    let parsed: { data?: Array<{ url?: unknown; b64_json?: unknown }> };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw new GenerationFailure(ERROR_CODES.badResponse, `Upstream answered ${res.status} with a body that is not JSON`, true);
    }
    const first = parsed?.data?.[0];
    if (typeof first?.b64_json === 'string' && first.b64_json.length > 0) {
      const data = Buffer.from(first.b64_json, 'base64');
      if (data.length > this.opts.maxImageBytes) {
        throw new GenerationFailure(ERROR_CODES.downloadTooLarge, `Image is larger than the limit of ${this.opts.maxImageBytes} bytes (${data.length})`, false);
      }
      return { kind: 'bytes', data, contentType: 'image/png' };
    }
    if (isHttpUrl(first?.url)) return { kind: 'url', url: first.url };
    throw new GenerationFailure(ERROR_CODES.badResponse, 'Upstream answer has neither data[0].url nor data[0].b64_json', false);
  }
}
