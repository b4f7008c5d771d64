import { makeThumbnails, probeImage, type ImageInfo, type Thumbnail, type ThumbnailOptions } from './image-processing';

/** What the pipeline does with an original's bytes: check them, then make its thumbnails. */
export interface ImageStage {
  probe(data: Buffer, maxPixels: number): Promise<ImageInfo>;
  thumbnails(original: Buffer, opts: ThumbnailOptions): Promise<{ thumbnails: Thumbnail[]; placeholder?: string }>;
}

export const sharpImageStage: ImageStage = { probe: probeImage, thumbnails: makeThumbnails };

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * No image work at all: a PNG's size read from its header, tiny fixed thumbnails. Benchmarks
 * switch it on to measure what a generation costs around the image work.
 */
export const noopImageStage: ImageStage = {
  async probe(data) {
    const png = data.length >= 24 && data.subarray(0, 8).equals(PNG_SIGNATURE);
    return { format: 'png', ext: 'png', width: png ? data.readUInt32BE(16) : 1, height: png ? data.readUInt32BE(20) : 1 };
  },
  async thumbnails(_original, opts) {
    const thumbnails = opts.sizes.map((size) => ({ size, data: Buffer.alloc(64, size % 256), width: size, height: size, format: opts.format }));
    return { thumbnails };
  },
};
