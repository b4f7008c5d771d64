import { hsl, lerpHue, type Hsl } from './color';
import type { Rng } from './prng';

/** Six key colours; styles derive tints and shades from these rather than inventing hues. */
export interface Palette {
  readonly sky: Hsl;
  /** Glow near the horizon, pulled towards warm hues like real atmospheric scattering. */
  readonly horizon: Hsl;
  readonly sun: Hsl;
  readonly land: Hsl;
  readonly accent: Hsl;
  /** Darkest tone, used for ink, silhouettes and shadows. */
  readonly shade: Hsl;
}

// Hue offsets (land, accent) relative to the sky: classic harmony schemes so random hues still agree.
const SCHEMES: ReadonlyArray<readonly [number, number]> = [
  [35, -40], // analogous
  [180, 150], // complementary
  [120, 240], // triadic
  [150, 210], // split complementary
  [-60, 160],
];

export function makePalette(rng: Rng): Palette {
  const base = rng.range(0, 360);
  const [landOffset, accentOffset] = rng.pick(SCHEMES);
  const warmth = rng.range(0.25, 0.75);
  const sky = hsl(base, rng.range(0.45, 0.72), rng.range(0.52, 0.68));
  const land = hsl(base + landOffset + rng.jitter(12), rng.range(0.3, 0.55), rng.range(0.3, 0.45));
  return {
    sky,
    horizon: hsl(lerpHue(base, 35, warmth), rng.range(0.55, 0.8), rng.range(0.78, 0.86)),
    sun: hsl(lerpHue(base, 48, 0.85), 0.95, rng.range(0.8, 0.88)),
    land,
    accent: hsl(base + accentOffset + rng.jitter(10), rng.range(0.6, 0.85), rng.range(0.5, 0.6)),
    shade: hsl(land.h + 15, rng.range(0.25, 0.4), rng.range(0.11, 0.17)),
  };
}
