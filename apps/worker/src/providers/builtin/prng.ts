import { createHash } from 'node:crypto';

export interface Rng {
  /** Uniform float in [0, 1). */
  next(): number;
  range(min: number, max: number): number;
  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number;
  chance(probability: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** Symmetric jitter in [-amount, amount]. */
  jitter(amount: number): number;
}

/**
 * Only the digest of the key ever reaches the generator, so arbitrary user text
 * (markup, emoji, megabytes) influences the picture without entering the SVG.
 */
export function seedFromKey(key: string): [number, number, number, number] {
  const digest = createHash('sha256').update(key, 'utf8').digest();
  return [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)];
}

/**
 * sfc32: tiny, fast and well distributed; pure 32-bit integer arithmetic keeps
 * the sequence identical on every platform and Node version.
 */
export function createRng(seed: readonly [number, number, number, number]): Rng {
  let [a, b, c, d] = seed;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // The first outputs of sfc32 are still correlated with the seed words.
  for (let i = 0; i < 12; i++) next();

  const range = (min: number, max: number): number => min + (max - min) * next();
  return {
    next,
    range,
    int: (min, max) => Math.floor(range(min, max + 1)),
    chance: (probability) => next() < probability,
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new Error('pick() needs at least one item');
      return items[Math.floor(next() * items.length)] as T;
    },
    jitter: (amount) => (next() * 2 - 1) * amount,
  };
}
