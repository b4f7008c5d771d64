import sharp from 'sharp';
import { noopImageStage, sharpImageStage } from './image-stage';

const opts = { sizes: [512, 128], format: 'webp' as const, quality: 80, maxPixels: 8192 * 8192, placeholder: true };

describe('image stages', () => {
  it('the no-op stage reads a PNG size from its header like sharp does, and makes one thumbnail per size', async () => {
    const png = await sharp({ create: { width: 300, height: 170, channels: 3, background: '#123' } }).png().toBuffer();
    const [real, noop] = await Promise.all([sharpImageStage.probe(png, opts.maxPixels), noopImageStage.probe(png, opts.maxPixels)]);
    expect({ width: noop.width, height: noop.height, format: noop.format }).toEqual({ width: real.width, height: real.height, format: real.format });
    const { thumbnails } = await noopImageStage.thumbnails(png, opts);
    expect(thumbnails.map((t) => [t.size, t.format])).toEqual([
      [512, 'webp'],
      [128, 'webp'],
    ]);
  });
});
