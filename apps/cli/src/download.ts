import { createWriteStream } from 'node:fs';
import { rename, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CliError } from './client';

export async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** Saves a URL to `file` through a temporary name, so a killed run never leaves half a file behind. */
export async function download(url: string, file: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new CliError(`Cannot download ${url}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`);
  }
  if (!res.ok || !res.body) throw new CliError(`Cannot download ${url}: ${res.status}`);
  const tmp = `${file}.part`;
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(tmp));
  await rename(tmp, file);
}

/** The extension of a result URL's file. */
export const extensionOf = (url: string) => url.slice(url.lastIndexOf('.') + 1).replace(/[^a-z0-9]/gi, '') || 'png';
