import type { Rng } from './prng';

/** A background silhouette line (hills, mountains), far ridges first. */
export interface Ridge {
  /** y of the ridge foot. */
  readonly baseY: number;
  /** Tallest rise above baseY, in px. */
  readonly amplitude: number;
  /** Heights in [0, 1] sampled evenly from the left edge to the right edge. */
  readonly profile: readonly number[];
}

/** Something standing on the ground: a tree, a sphere, a cube... each style decides. */
export interface Prop {
  readonly x: number;
  /** y where the prop touches the ground. */
  readonly ground: number;
  /** 0 at the horizon, 1 at the bottom edge; drives perspective scale. */
  readonly depth: number;
  /** Free per-prop randomness for the style (shape variant, colour choice). */
  readonly variant: number;
  readonly tone: number;
}

export interface Layout {
  readonly width: number;
  readonly height: number;
  /** min(width, height): sizes scale with it so portrait and landscape feel alike. */
  readonly unit: number;
  readonly horizon: number;
  readonly sun: { readonly x: number; readonly y: number; readonly r: number };
  readonly lightFromLeft: boolean;
  readonly ridges: readonly Ridge[];
  readonly props: readonly Prop[];
}

const PROFILE_SAMPLES = 25;

/** A few incommensurate sine octaves: smooth, organic, and cheap to sample. */
function ridgeProfile(rng: Rng): number[] {
  const octaves = [1, 2.3, 5.1].map((f, i) => ({
    freq: f * rng.range(0.7, 1.3),
    phase: rng.range(0, Math.PI * 2),
    amp: 1 / (i + 1) ** 1.3,
  }));
  const raw = Array.from({ length: PROFILE_SAMPLES }, (_, i) => {
    const t = i / (PROFILE_SAMPLES - 1);
    return octaves.reduce((sum, o) => sum + o.amp * Math.sin(t * Math.PI * 2 * o.freq + o.phase), 0);
  });
  const lo = Math.min(...raw);
  const hi = Math.max(...raw);
  return raw.map((v) => (v - lo) / (hi - lo || 1));
}

export function makeLayout(rng: Rng, width: number, height: number): Layout {
  const unit = Math.min(width, height);
  const horizon = height * rng.range(0.56, 0.7);
  const sunR = unit * rng.range(0.055, 0.095);

  const ridgeCount = rng.int(2, 3);
  const ridges: Ridge[] = Array.from({ length: ridgeCount }, (_, i) => ({
    baseY: horizon + i * unit * 0.012,
    amplitude: horizon * rng.range(0.2, 0.36) * (1 - i * 0.28),
    profile: ridgeProfile(rng),
  }));

  // Stratified x slots keep props from piling up on one side.
  const count = rng.int(3, 6);
  const slots = Array.from({ length: count }, (_, i) => i);
  for (let i = slots.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    const tmp = slots[i] as number;
    slots[i] = slots[j] as number;
    slots[j] = tmp;
  }
  const props: Prop[] = slots.map((slot) => {
    const depth = rng.range(0.12, 0.85);
    return {
      x: ((slot + 0.5 + rng.jitter(0.3)) / count) * width,
      ground: horizon + (height - horizon) * depth,
      depth,
      variant: rng.next(),
      tone: rng.next(),
    };
  });
  props.sort((a, b) => a.ground - b.ground);

  return {
    width,
    height,
    unit,
    horizon,
    sun: {
      x: width * rng.range(0.15, 0.85),
      y: horizon - (horizon - sunR) * rng.range(0.35, 0.75),
      r: sunR,
    },
    lightFromLeft: rng.chance(0.5),
    ridges,
    props,
  };
}

/** Ridge height at an arbitrary x, linearly interpolated between profile samples. */
export function ridgeY(ridge: Ridge, x: number, width: number): number {
  const n = ridge.profile.length - 1;
  const t = Math.min(n, Math.max(0, (x / width) * n));
  const i = Math.min(n - 1, Math.floor(t));
  const a = ridge.profile[i] ?? 0;
  const b = ridge.profile[i + 1] ?? a;
  return ridge.baseY - ridge.amplitude * (a + (b - a) * (t - i));
}
