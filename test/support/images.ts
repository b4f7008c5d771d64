import sharp from 'sharp';
import { SIZE_DIMENSIONS, type Size } from '@imagegen/shared';

export interface FetchedImage {
  status: number;
  contentType: string | null;
  format?: string;
  width?: number;
  height?: number;
  bytes: number;
}

/** GETs a URL the way a browser would (no credentials) and reads it with sharp. */
export async function fetchImage(url: string): Promise<FetchedImage> {
  const res = await fetch(url);
  const data = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) return { status: res.status, contentType: res.headers.get('content-type'), bytes: data.length };
  const meta = await sharp(data).metadata();
  return { status: res.status, contentType: res.headers.get('content-type'), format: meta.format, width: meta.width, height: meta.height, bytes: data.length };
}

export function aspectOf(size: Size): number {
  const d = SIZE_DIMENSIONS[size];
  return d.width / d.height;
}

/** Checks every URL of a completed generation; returns the problems found (empty = all good). */
export async function checkResultImages(generation: any, size: Size, opts: { originalFormat?: string; expectDimensions?: boolean } = {}): Promise<string[]> {
  const problems: string[] = [];
  const original = await fetchImage(generation.result.image.url);
  // thumbnails keep the original's aspect; the original has the requested one when the provider renders exact sizes
  const aspect = (original.width ?? 1) / (original.height ?? 1);
  if (opts.expectDimensions !== false && Math.abs(aspect - aspectOf(size)) > 0.01) problems.push(`original aspect ${aspect} != ${aspectOf(size)}`);
  if (original.status !== 200) problems.push(`original answered ${original.status}`);
  if (opts.originalFormat && original.format !== opts.originalFormat) problems.push(`original format ${original.format}`);
  if (original.contentType !== `image/${original.format === 'jpeg' ? 'jpeg' : original.format}`) problems.push(`original content-type ${original.contentType}`);
  if (original.width !== generation.result.image.width || original.height !== generation.result.image.height) problems.push('original dimensions differ from the record');
  if (opts.expectDimensions !== false) {
    const d = SIZE_DIMENSIONS[size];
    if (original.width !== d.width || original.height !== d.height) problems.push(`original is ${original.width}x${original.height}, expected ${d.width}x${d.height}`);
  }
  for (const t of generation.result.thumbnails) {
    const img = await fetchImage(t.url);
    if (img.status !== 200) problems.push(`thumb ${t.size} answered ${img.status}`);
    if (img.format !== t.format) problems.push(`thumb ${t.size} format ${img.format} != ${t.format}`);
    if (img.contentType !== `image/${t.format}`) problems.push(`thumb ${t.size} content-type ${img.contentType}`);
    if (img.width !== t.width || img.height !== t.height) problems.push(`thumb ${t.size} is ${img.width}x${img.height}, record says ${t.width}x${t.height}`);
    const longest = Math.max(img.width ?? 0, img.height ?? 0);
    if (longest !== Math.min(t.size, Math.max(original.width ?? 0, original.height ?? 0))) problems.push(`thumb ${t.size} longest edge ${longest}`);
    if (Math.abs((img.width ?? 0) / (img.height ?? 1) - aspect) > 0.02) problems.push(`thumb ${t.size} aspect ${(img.width ?? 0) / (img.height ?? 1)} != ${aspect}`);
  }
  return problems;
}
