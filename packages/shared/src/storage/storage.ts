import type { Readable } from 'node:stream';

/** Where originals and thumbnails live. Keys look like `<fileToken>/<name>.<ext>`. */
export interface Storage {
  /** Writes atomically: readers see the old file, the whole new one, or nothing. */
  put(key: string, data: Buffer): Promise<{ bytes: number }>;
  read(key: string): Promise<Buffer>;
  stat(key: string): Promise<StoredFileInfo | null>;
  createReadStream(key: string): Readable;
  /**
   * The file's path on this machine when the backend keeps local files (the API then lets the
   * OS send it: ranges, conditional requests, and no descriptor outliving the response).
   * Undefined for keys that are invalid and for backends without local files.
   */
  localPath?(key: string): string | undefined;
  /** Removes every file under a key prefix such as a file token. */
  removePrefix(prefix: string): Promise<void>;
  /** Removes temporary files older than `olderThanMs` (left by a process killed mid-write); returns how many. */
  sweepTemporary?(olderThanMs: number): Promise<number>;
}

export interface StoredFileInfo {
  bytes: number;
  /** When the file was last written, where the backend knows it. */
  modifiedAt?: Date;
}

const KEY_PATTERN = /^[A-Za-z0-9_-]{8,64}\/[A-Za-z0-9_-]{1,64}\.[a-z0-9]{2,5}$/;

export function isValidStorageKey(key: string): boolean {
  return KEY_PATTERN.test(key);
}

export const CONTENT_TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  avif: 'image/avif',
  gif: 'image/gif',
  tiff: 'image/tiff',
  svg: 'image/svg+xml',
};

export function contentTypeFor(key: string): string {
  return CONTENT_TYPES[key.slice(key.lastIndexOf('.') + 1)] ?? 'application/octet-stream';
}
