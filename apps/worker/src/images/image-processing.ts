// The one place that uses sharp: probing, rasterizing and thumbnailing.
import sharp from 'sharp';
import { rgbaToThumbHash } from 'thumbhash';
import { ERROR_CODES, GenerationFailure } from '@imagegen/shared';

export type ThumbnailFormat = 'webp' | 'avif' | 'jpeg' | 'png';

export interface ImageInfo {
  format: string;
  /** File extension for storage keys. */
  ext: string;
  width: number;
  height: number;
}

export interface Thumbnail {
  size: number;
  data: Buffer;
  width: number;
  height: number;
  format: ThumbnailFormat;
}

export interface ThumbnailOptions {
  sizes: number[];
  format: ThumbnailFormat;
  quality: number;
  maxPixels: number;
  placeholder: boolean;
}

const EXT_BY_FORMAT: Record<string, string> = { jpeg: 'jpg', png: 'png', webp: 'webp', gif: 'gif', avif: 'avif', heif: 'avif', tiff: 'tiff' };

/** Magic numbers of the formats accepted from an upstream: anything else (an HTML error page, JSON) is refused before decoding. */
function sniffFormat(data: Buffer): string | null {
  if (data.length < 12) return null;
  if (data[0] === 0x89 && data.toString('latin1', 1, 4) === 'PNG') return 'png';
  if (data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'jpeg';
  if (data.toString('latin1', 0, 4) === 'RIFF' && data.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  if (data.toString('latin1', 0, 3) === 'GIF') return 'gif';
  if (data.toString('latin1', 4, 8) === 'ftyp') return 'heif';
  const tiff = data.toString('latin1', 0, 4);
  if (tiff === 'II*\0' || tiff === 'MM\0*') return 'tiff';
  return null;
}

/** Checks that bytes are an image we will decode, reading headers only. */
export async function probeImage(data: Buffer, maxPixels: number): Promise<ImageInfo> {
  if (!sniffFormat(data)) {
    const looksLike = /^\s*</.test(data.subarray(0, 64).toString('latin1')) ? 'an HTML or XML document' : /^\s*[[{]/.test(data.subarray(0, 64).toString('latin1')) ? 'JSON' : 'unknown data';
    throw new GenerationFailure(ERROR_CODES.invalidImage, `Upstream file is not an image (${data.length} bytes of ${looksLike})`, false);
  }
  let meta: sharp.Metadata;
  try {
    meta = await sharp(data, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new GenerationFailure(ERROR_CODES.invalidImage, `Upstream image cannot be read: ${(err as Error).message}`, false);
  }
  const { width, height, format } = meta;
  if (!width || !height || !format) throw new GenerationFailure(ERROR_CODES.invalidImage, 'Upstream image has no dimensions', false);
  if (width * height > maxPixels) {
    throw new GenerationFailure(
      ERROR_CODES.imageTooLarge,
      `Upstream image is ${width}×${height} (${width * height} pixels), over the limit of ${maxPixels} pixels`,
      false,
    );
  }
  return { format, ext: EXT_BY_FORMAT[format] ?? format, width, height };
}

/** Renders an SVG document to PNG; `opaque` drops the alpha channel (smaller, ~20 % faster to encode). */
export async function rasterizeSvg(svg: string, opts: { opaque?: boolean } = {}): Promise<{ data: Buffer; width: number; height: number }> {
  let pipeline = sharp(Buffer.from(svg), { density: 72 });
  if (opts.opaque) pipeline = pipeline.removeAlpha();
  const { data, info } = await pipeline.png({ compressionLevel: 6 }).toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

function encoder(pipeline: sharp.Sharp, format: ThumbnailFormat, quality: number): sharp.Sharp {
  switch (format) {
    case 'webp':
      return pipeline.webp({ quality, effort: 4 });
    case 'avif':
      return pipeline.avif({ quality, effort: 2 });
    case 'jpeg':
      return pipeline.jpeg({ quality, mozjpeg: true });
    case 'png':
      return pipeline.png({ compressionLevel: 6 });
  }
}

/** A ThumbHash of the image (base64): a blurred preview of a few dozen bytes. */
async function makePlaceholder(pipeline: sharp.Sharp): Promise<string> {
  const tiny = await pipeline.resize(100, 100, { fit: 'inside' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return Buffer.from(rgbaToThumbHash(tiny.info.width, tiny.info.height, tiny.data)).toString('base64');
}

/**
 * Every thumbnail from one decode: the original is decoded and shrunk once to the
 * largest size, and each smaller size (and the placeholder) is derived from those pixels.
 * Thumbnails are never larger than the original.
 */
export async function makeThumbnails(original: Buffer, opts: ThumbnailOptions): Promise<{ thumbnails: Thumbnail[]; placeholder?: string }> {
  const sizes = [...opts.sizes].sort((a, b) => b - a);
  const largest = sizes[0] ?? 1024;
  let base: { data: Buffer; info: sharp.OutputInfo };
  try {
    base = await sharp(original, { limitInputPixels: opts.maxPixels, failOn: 'error' })
      .rotate()
      .resize(largest, largest, { fit: 'inside', withoutEnlargement: true })
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new GenerationFailure(ERROR_CODES.processingFailed, `Image could not be decoded: ${(err as Error).message}`, false);
  }
  const raw = { width: base.info.width, height: base.info.height, channels: base.info.channels };
  const fromBase = () => sharp(base.data, { raw });

  // the placeholder is made beside the encodes, not after them
  const [thumbnails, placeholder] = await Promise.all([
    Promise.all(
      sizes.map(async (size) => {
        let pipeline = fromBase();
        if (size < Math.max(raw.width, raw.height)) pipeline = pipeline.resize(size, size, { fit: 'inside' });
        const { data, info } = await encoder(pipeline, opts.format, opts.quality).toBuffer({ resolveWithObject: true });
        return { size, data, width: info.width, height: info.height, format: opts.format };
      }),
    ),
    opts.placeholder ? makePlaceholder(fromBase()) : undefined,
  ]);
  return { thumbnails, placeholder };
}
