import type { Readable } from 'node:stream';
import { retentionSeconds } from '../config';

/** Where originals and thumbnails live. Keys look like `<fileToken>/<name>.<ext>`. */
export interface Storage {
  /** Writes atomically: readers see the old file, the whole new one, or nothing. */
  put(key: string, data: Buffer): Promise<{ bytes: number }>;
  read(key: string): Promise<Buffer>;
  stat(key: string): Promise<StoredFileInfo | null>;
  createReadStream(key: string): Readable;
  /**
   * The file's bytes (all, or one inclusive byte range) with what is known about the whole
   * file; null when there is no such file. Whoever takes the stream destroys it when done
   * with it, however that goes: that releases the descriptor or connection behind it.
   */
  open?(key: string, range?: ByteRange): Promise<OpenedFile | null>;
  /**
   * The file's path on this machine when the backend keeps local files (the API then lets the
   * OS send it: ranges, conditional requests, and no descriptor outliving the response).
   * Undefined for keys that are invalid and for backends without local files.
   */
  localPath?(key: string): string | undefined;
  /** Removes every file under a key prefix such as a file token. */
  removePrefix(prefix: string): Promise<void>;
  /**
   * Removes every file under a key prefix but the keys in `keep`, writes left part-way included:
   * called once a generation's result is final, when nothing may still write there but a runner
   * that has lost its turn.
   */
  removeOthers(prefix: string, keep: ReadonlySet<string>): Promise<void>;
  /** Removes temporary files older than `olderThanMs` (left by a process killed mid-write); returns how many. */
  sweepTemporary?(olderThanMs: number): Promise<number>;
  /** Throws, saying why, when the store cannot be used now (down, its bucket missing, access refused). */
  reachable?(): Promise<void>;
  /** Lets go of connections the backend keeps open. */
  close?(): Promise<void>;
}

export interface StoredFileInfo {
  bytes: number;
  /** When the file was last written, where the backend knows it. */
  modifiedAt?: Date;
  /** A strong validator of the content, quoted, where the backend has one (an object store's ETag). */
  etag?: string;
  /** The content type the backend keeps with the file, if any. */
  contentType?: string;
}

/** First and last byte, both inclusive, as in HTTP's `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface OpenedFile {
  stream: Readable;
  /** The whole file's size and validators, also when the stream carries only a range. */
  info: StoredFileInfo;
}

const KEY_PATTERN = /^[A-Za-z0-9_-]{8,64}\/[A-Za-z0-9_-]{1,64}\.[a-z0-9]{2,5}$/;

export function isValidStorageKey(key: string): boolean {
  return KEY_PATTERN.test(key);
}

const PREFIX_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

/** A prefix `removePrefix` accepts: one file token, never a path. */
export function isValidStoragePrefix(prefix: string): boolean {
  return PREFIX_PATTERN.test(prefix);
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

/**
 * A store's error as it may be shown: the message reaches a generation's record (its client,
 * its webhook), the job's log on the dashboard and the logs, and a file system names the file,
 * whose path holds a file token (which opens that generation's files) under the data directory.
 * Quoted paths go; the rest of the message stays.
 */
export function storageErrorText(err: unknown): string {
  return String((err as Error)?.message ?? err).replace(/'[^']*[\\/][^']*'/g, "'<file>'");
}

const YEAR_SECONDS = 31_536_000;

/**
 * Files never change once written, so caches (a browser, a CDN in front of a public bucket) may
 * keep them: for as long as the retention keeps them (at most a year), not a year past their
 * removal; a year when the retention is not known.
 */
export function fileCacheControl(retentionHours?: number): string {
  const seconds = retentionHours === undefined ? YEAR_SECONDS : Math.min(YEAR_SECONDS, retentionSeconds(retentionHours));
  return `public, max-age=${seconds}, immutable`;
}
