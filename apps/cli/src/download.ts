import { createWriteStream, rmSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { causeOf, CliError, isTransientStatus } from './client';

/** The temporary files of the downloads under way. */
const partials = new Set<string>();

/**
 * Removes the temporary file of every download under way, at once: for a run about to exit on
 * Ctrl-C, whose downloads would otherwise leave them behind half written.
 */
export function discardPartialDownloads(): void {
  for (const tmp of partials) rmSync(tmp, { force: true });
  partials.clear();
}

export async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** A file URL as a message shows it: without its query (a bucket's signed URL carries its signature there). */
function shown(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return 'the file URL';
  }
}

/**
 * Saves a URL to `file` through a temporary name, so a killed run never leaves half a file
 * behind. A failure that may pass (no connection, one cut off mid-body, a 5xx or 429) is a
 * retryable CliError.
 */
export async function download(url: string, file: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new CliError(`Cannot download ${shown(url)}: ${causeOf(err)}`, 1, true);
  }
  if (!res.ok || !res.body) {
    // the connection is given back now, not when the body is collected (a retry follows)
    await res.body?.cancel().catch(() => undefined);
    throw new CliError(`Cannot download ${shown(url)}: ${res.status}`, 1, isTransientStatus(res.status, res.headers.get('retry-after')));
  }
  const tmp = `${file}.part`;
  partials.add(tmp);
  try {
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(tmp));
  } catch (err) {
    await rm(tmp, { force: true });
    // the file side (a missing folder, a full disk, no permission) names its path: no use trying again
    const local = (err as NodeJS.ErrnoException).path !== undefined;
    throw new CliError(local ? `Cannot write ${file}: ${causeOf(err)}` : `Cannot download ${shown(url)}: ${causeOf(err)}`, 1, !local);
  } finally {
    partials.delete(tmp);
  }
  await rename(tmp, file);
}

/** The extension of a result URL's file. */
export const extensionOf = (url: string) => url.slice(url.lastIndexOf('.') + 1).replace(/[^a-z0-9]/gi, '') || 'png';
