import sharp from 'sharp';
import { thumbHashToRGBA } from 'thumbhash';
import { GenerationFailure } from '@imagegen/shared';
import { makeThumbnails, probeImage, rasterizeSvg } from './image-processing';

const image = (width: number, height: number, format: 'png' | 'jpeg' = 'png') => {
  const s = sharp({ create: { width, height, channels: 3, background: { r: 200, g: 80, b: 20 } } });
  return format === 'png' ? s.png().toBuffer() : s.jpeg().toBuffer();
};

const opts = { sizes: [1024, 512, 256], format: 'webp' as const, quality: 80, maxPixels: 50_000_000, placeholder: true };

it('makes one thumbnail per size, longest edge = size, aspect kept', async () => {
  const { thumbnails, placeholder } = await makeThumbnails(await image(1344, 768), opts);
  expect(thumbnails.map((t) => [t.size, t.width, t.height, t.format])).toEqual([
    [1024, 1024, 585, 'webp'],
    [512, 512, 293, 'webp'],
    [256, 256, 146, 'webp'],
  ]);
  for (const t of thumbnails) {
    const meta = await sharp(t.data).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['webp', t.width, t.height]);
  }
  const decoded = thumbHashToRGBA(Buffer.from(placeholder!, 'base64'));
  expect(decoded.w).toBeGreaterThan(decoded.h); // landscape placeholder
});

it('never enlarges a small original', async () => {
  const { thumbnails } = await makeThumbnails(await image(300, 200), opts);
  expect(thumbnails.map((t) => [t.size, t.width, t.height])).toEqual([
    [1024, 300, 200],
    [512, 300, 200],
    [256, 256, 171],
  ]);
});

it.each(['avif', 'jpeg', 'png'] as const)('encodes %s when configured', async (format) => {
  const { thumbnails } = await makeThumbnails(await image(800, 800, 'jpeg'), { ...opts, sizes: [128], format, placeholder: false });
  expect((await sharp(thumbnails[0]!.data).metadata()).format).toBe(format === 'avif' ? 'heif' : format);
});

it('probes real images and refuses what is not one, or too many pixels', async () => {
  expect(await probeImage(await image(640, 480, 'jpeg'), 1e6)).toMatchObject({ format: 'jpeg', ext: 'jpg', width: 640, height: 480 });
  await expect(probeImage(Buffer.from('<!doctype html><html>Forbidden</html>'), 1e6)).rejects.toMatchObject({ code: 'invalid_image', retryable: false });
  await expect(probeImage(Buffer.from('{"error":"nope"}xxxxxxxx'), 1e6)).rejects.toBeInstanceOf(GenerationFailure);
  await expect(probeImage(await image(2000, 1000), 1_000_000)).rejects.toMatchObject({ code: 'image_too_large' });
  const truncated = (await image(640, 480)).subarray(0, 40);
  await expect(probeImage(truncated, 1e6)).rejects.toMatchObject({ code: 'invalid_image' });
});

it('refuses to decode past the pixel limit even when asked for thumbnails directly', async () => {
  await expect(makeThumbnails(await image(2000, 2000), { ...opts, maxPixels: 1_000_000 })).rejects.toMatchObject({ code: 'processing_failed' });
});

it('rasterizes SVG at its own size', async () => {
  const { data, width, height } = await rasterizeSvg('<svg xmlns="http://www.w3.org/2000/svg" width="300" height="120"><rect width="300" height="120" fill="#09c"/></svg>');
  expect([width, height]).toEqual([300, 120]);
  expect((await sharp(data).metadata()).format).toBe('png');
});
