import type { GeneratedImage, GenerateContext, GenerationRequest, GeneratorProvider } from '@imagegen/shared';
import { rasterizeSvg } from '../images/image-processing';
import type { Semaphore } from '../images/semaphore';
import { composeScene } from './builtin/scene';

/** Offline procedural renderer: no key, no network, same request → same image. */
export class BuiltinProvider implements GeneratorProvider {
  readonly name = 'builtin' as const;

  constructor(private readonly cpu: Semaphore) {}

  async generate(request: GenerationRequest, ctx: GenerateContext): Promise<GeneratedImage> {
    ctx.signal.throwIfAborted();
    const { svg } = composeScene(request);
    // every scene paints its whole canvas
    const { data } = await this.cpu.run(() => rasterizeSvg(svg, { opaque: true }));
    return { kind: 'bytes', data, contentType: 'image/png' };
  }
}
