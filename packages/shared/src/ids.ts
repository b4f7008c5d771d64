import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

// one call to the CSPRNG per 4 KiB instead of per id (as crypto.randomUUID caches): each byte is used once
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let used = 0;

function randomBytesPooled(n: number): Buffer {
  if (used + n > pool.length) {
    pool = randomBytes(POOL_BYTES);
    used = 0;
  }
  used += n;
  return pool.subarray(used - n, used);
}

function randomAlnum(length: number): string {
  const bytes = randomBytesPooled(length);
  let out = '';
  for (const b of bytes) out += ALPHABET[b % 36];
  return out;
}

/** Characters of an id's time part, after `<kind>_`: a millisecond time in base 36. */
export const ID_TIME_CHARS = 9;

/**
 * Time-ordered ids: a millisecond timestamp first so ids sort by creation. Processes give the
 * time from their RedisClock, so ids made on hosts whose clocks disagree still sort together.
 * A record's `createdAt` is this time (see ID_TIME), so listings ordered by id are ordered by it.
 */
export function newId(kind: 'gen' | 'batch', atMs: number = Date.now()): string {
  return `${idTimeBound(kind, atMs)}${randomAlnum(14)}`;
}

/** Sorts before every id made at or after `ms` and after every one made before it. */
export function idTimeBound(kind: 'gen' | 'batch', ms: number): string {
  return `${kind}_${ms.toString(36).padStart(ID_TIME_CHARS, '0')}`;
}

/** A webhook recovery's id: random, so one tenant cannot guess another's. */
export function newRecoveryId(): string {
  return `rcv_${randomAlnum(20)}`;
}

/** 128 random bits, URL-safe: the unguessable part of every file URL. */
export function newFileToken(): string {
  return randomBytesPooled(16).toString('base64url');
}
