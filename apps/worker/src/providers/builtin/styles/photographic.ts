import { hex, hsl, lerpHue, mix, shift, type Hsl } from '../color';
import type { Palette } from '../palette';
import { ridgeY } from '../layout';
import { coniferOutline } from '../shapes';
import { el, fmt, polyPath, smoothPath, type Point } from '../svg';
import type { Rendered, SceneContext } from '../types';

// Blurs and noise are the expensive parts in librsvg; filters in sRGB space skip
// the linearRGB round trip and roughly halve their cost with no visible change.
const FILTER_SPACE = 'sRGB';
const GRAIN_TILE = 256;

const stop = (offset: number, color: Hsl, opacity = 1): string =>
  el('stop', { offset, 'stop-color': hex(color), 'stop-opacity': opacity === 1 ? undefined : opacity });

// Real skies and land come in a narrow band of hues; pulling the shared palette
// towards them keeps the "photo" believable while each topic keeps its own tint.
const SKY_HUES = [210, 28, 335, 265];
const LAND_HUES = [95, 35, 150];

function nearestHue(h: number, hues: readonly number[]): number {
  const dist = (a: number): number => Math.abs(((a - h + 540) % 360) - 180);
  return hues.reduce((best, cand) => (dist(cand) < dist(best) ? cand : best));
}

function naturalize(p: Palette): Palette {
  const toward = (c: Hsl, hues: readonly number[], t: number, sat: number): Hsl => hsl(lerpHue(c.h, nearestHue(c.h, hues), t), c.s * sat, c.l);
  return {
    ...p,
    sky: toward(p.sky, SKY_HUES, 0.6, 0.9),
    horizon: toward(p.horizon, SKY_HUES, 0.3, 1),
    land: toward(p.land, LAND_HUES, 0.6, 0.85),
  };
}

export function renderPhotographic({ rng, palette: raw, layout }: SceneContext): Rendered {
  const palette = naturalize(raw);
  const { width: w, height: h, horizon, sun, unit } = layout;
  const defs: string[] = [];
  const body: string[] = [];
  const white = hsl(0, 0, 1);

  // Sky: deeper at the zenith, glowing towards the horizon.
  defs.push(
    el(
      'linearGradient',
      { id: 'sky', x1: 0, y1: 0, x2: 0, y2: horizon, gradientUnits: 'userSpaceOnUse' },
      stop(0, shift(palette.sky, { l: -0.2, s: 0.05 })) +
        stop(0.55, palette.sky) +
        stop(0.9, mix(palette.sky, palette.horizon, 0.75)) +
        stop(1, shift(palette.horizon, { l: 0.06 })),
    ),
  );
  body.push(el('rect', { width: w, height: h, fill: 'url(#sky)' }));

  // Radial gradients cost per covered pixel in cairo (~20 ms per full frame), so
  // the glow is a circle rather than a full-frame rect.
  const glowR = unit * 0.55;
  defs.push(
    el(
      'radialGradient',
      { id: 'glow', cx: sun.x, cy: sun.y, r: glowR, gradientUnits: 'userSpaceOnUse' },
      stop(0, palette.sun, 0.9) + stop(0.12, palette.sun, 0.55) + stop(0.45, palette.horizon, 0.2) + stop(1, palette.horizon, 0),
    ),
  );
  body.push(el('circle', { cx: sun.x, cy: sun.y, r: glowR, fill: 'url(#glow)' }));

  // Cloud banks: clusters of soft radial puffs. A gradient is ~10x cheaper than
  // blurring the same area in librsvg.
  defs.push(el('radialGradient', { id: 'puff' }, stop(0, mix(palette.horizon, white, 0.45), 0.55) + stop(0.5, palette.horizon, 0.25) + stop(1, palette.horizon, 0)));
  const banks = rng.int(2, 3);
  for (let i = 0; i < banks; i++) {
    const cx = rng.range(0, w);
    const cy = rng.range(horizon * 0.12, horizon * 0.75);
    const span = w * rng.range(0.15, 0.3);
    for (let k = rng.int(3, 5); k > 0; k--) {
      body.push(
        el('ellipse', {
          cx: cx + rng.jitter(span),
          cy: cy + rng.jitter(unit * 0.025),
          rx: span * rng.range(0.4, 0.8),
          ry: unit * rng.range(0.025, 0.06),
          fill: 'url(#puff)',
        }),
      );
    }
  }

  // A soft-edged disc via gradient: looks like a blurred circle at a fraction
  // of the cost (librsvg blurs cost ~0.2 µs per pixel of filter region).
  const sunCore = hex(mix(palette.sun, white, 0.5));
  defs.push(el('radialGradient', { id: 'sun' }, el('stop', { offset: 0.7, 'stop-color': sunCore }) + el('stop', { offset: 1, 'stop-color': sunCore, 'stop-opacity': 0 })));
  body.push(el('circle', { cx: sun.x, cy: sun.y, r: sun.r * 0.95, fill: 'url(#sun)' }));

  // Aerial perspective: far ridges dissolve into the horizon haze, and every
  // ridge is lit from the sun's side.
  const ridges = layout.ridges;
  const awayX = sun.x < w / 2 ? w : 0;
  ridges.forEach((ridge, i) => {
    const nearness = (i + 1) / ridges.length;
    const solid = mix(palette.land, palette.shade, nearness * 0.5);
    const color = mix(palette.horizon, solid, 0.3 + 0.55 * nearness);
    const top = ridge.baseY - ridge.amplitude;
    defs.push(
      el(
        'linearGradient',
        { id: `ridge${i}`, x1: sun.x, y1: top, x2: awayX, y2: ridge.baseY, gradientUnits: 'userSpaceOnUse' },
        stop(0, mix(color, palette.sun, 0.18)) + stop(0.6, color) + stop(1, shift(color, { l: -0.06 })),
      ),
    );
    const outline: Point[] = ridge.profile.map((_, k) => {
      const x = (k / (ridge.profile.length - 1)) * w;
      return { x, y: ridgeY(ridge, x, w) };
    });
    body.push(el('path', { d: smoothPath(outline) + `L${w} ${fmt(horizon + unit * 0.05)}L0 ${fmt(horizon + unit * 0.05)}Z`, fill: `url(#ridge${i})` }));
  });

  // Valley mist where the ridges meet the ground.
  const mistTop = horizon - unit * 0.12;
  defs.push(
    el(
      'linearGradient',
      { id: 'mist', x1: 0, y1: mistTop, x2: 0, y2: horizon + unit * 0.02, gradientUnits: 'userSpaceOnUse' },
      stop(0, palette.horizon, 0) + stop(0.75, palette.horizon, 0.55) + stop(1, palette.horizon, 0.2),
    ),
  );
  body.push(el('rect', { x: 0, y: mistTop, width: w, height: horizon - mistTop + unit * 0.02, fill: 'url(#mist)' }));

  // Distant treeline sells the scale of the ridges behind it.
  const lineTrees: string[] = [];
  for (let x = rng.range(-10, 10); x < w; x += unit * rng.range(0.006, 0.025)) {
    if (rng.chance(0.3)) continue;
    const th = unit * rng.range(0.012, 0.04);
    lineTrees.push(polyPath(coniferOutline(rng, x, horizon + 2, th, th * rng.range(0.35, 0.5))));
  }
  body.push(el('path', { d: lineTrees.join(''), fill: hex(mix(palette.shade, palette.horizon, 0.45)) }));

  const lake = rng.chance(0.5);
  const shoreY = lake ? horizon + (h - horizon) * rng.range(0.35, 0.55) : horizon;
  if (lake) {
    // Water mirrors the sky: the same colours upside down, a little darker.
    defs.push(
      el(
        'linearGradient',
        { id: 'water', x1: 0, y1: horizon, x2: 0, y2: shoreY, gradientUnits: 'userSpaceOnUse' },
        stop(0, shift(palette.horizon, { l: -0.04 })) + stop(0.45, mix(palette.sky, palette.horizon, 0.3)) + stop(1, shift(palette.sky, { l: -0.18 })),
      ),
    );
    body.push(el('rect', { x: 0, y: horizon, width: w, height: shoreY - horizon + unit * 0.05, fill: 'url(#water)' }));
    // Sun glitter: short strokes widening towards the viewer, in two intensities.
    const glints: [string[], string[]] = [[], []];
    for (let y = horizon + 2; y < shoreY; y += rng.range(2.5, 6)) {
      const t = (y - horizon) / (shoreY - horizon);
      const spread = sun.r * (0.8 + t * 2.2);
      for (let k = rng.int(1, 3); k > 0; k--) {
        const len = rng.range(0.08, 0.5) * spread;
        const x = sun.x + rng.jitter(spread) * rng.next();
        (rng.chance(0.3) ? glints[0] : glints[1]).push(`M${Math.round(x - len / 2)} ${Math.round(y)}h${Math.round(len)}`);
      }
    }
    const glint = hex(mix(palette.sun, white, 0.3));
    body.push(el('path', { d: glints[0].join(''), stroke: glint, 'stroke-width': 1.6, 'stroke-opacity': 0.75, 'stroke-linecap': 'round' }));
    body.push(el('path', { d: glints[1].join(''), stroke: glint, 'stroke-width': 1.2, 'stroke-opacity': 0.3, 'stroke-linecap': 'round' }));
  }

  const groundTop = mix(mix(palette.land, palette.horizon, 0.35), palette.shade, lake ? 0.3 : 0);
  defs.push(
    el(
      'linearGradient',
      { id: 'ground', x1: 0, y1: shoreY, x2: 0, y2: h, gradientUnits: 'userSpaceOnUse' },
      stop(0, groundTop) + stop(0.45, mix(palette.land, palette.shade, 0.3)) + stop(1, mix(palette.land, palette.shade, 0.8)),
    ),
  );
  const shoreline: Point[] = Array.from({ length: 9 }, (_, i) => ({ x: (i / 8) * w, y: shoreY + (lake ? rng.jitter(unit * 0.02) : 0) }));
  body.push(el('path', { d: smoothPath(shoreline) + `L${w} ${h}L0 ${h}Z`, fill: 'url(#ground)' }));

  // Sunlight grazing the ground on the sun's side.
  defs.push(
    el(
      'linearGradient',
      { id: 'graze', x1: sun.x, y1: 0, x2: awayX, y2: 0, gradientUnits: 'userSpaceOnUse' },
      stop(0, palette.sun, 0.22) + stop(0.7, palette.sun, 0),
    ),
  );
  body.push(el('rect', { x: 0, y: shoreY, width: w, height: h - shoreY, fill: 'url(#graze)' }));

  // Backlit trees: haze lightens the ones further away; some grow in small groups.
  for (const prop of layout.props) {
    const ground = lake ? shoreY + (h - shoreY) * (0.1 + prop.depth * 0.75) : prop.ground;
    const nearness = (ground - horizon) / (h - horizon);
    const color = hex(mix(palette.shade, palette.horizon, 0.4 * (1 - nearness)));
    const height = unit * (0.07 + 0.32 * nearness) * (0.75 + prop.variant * 0.5);
    const trees = prop.variant < 0.5 ? 1 : rng.int(2, 3);
    const outlines: string[] = [];
    for (let k = 0; k < trees; k++) {
      const th = height * (k === 0 ? 1 : rng.range(0.5, 0.8));
      const tx = prop.x + (k === 0 ? 0 : rng.jitter(height * 0.3));
      outlines.push(polyPath(coniferOutline(rng, tx, ground + k * 2, th, th * rng.range(0.3, 0.42))));
    }
    body.push(el('path', { d: outlines.join(''), fill: color }));
  }

  // Lens ghosts: gaussian-blurred light blobs on the line from the sun through
  // the frame centre. Radii are capped because a blur costs ~0.2 µs per pixel of
  // its (4r)² filter region; three of these already cost ~25 ms.
  const ghostCount = 3;
  for (let i = 0; i < ghostCount; i++) {
    const t = 0.55 + i * 0.45 + rng.jitter(0.1);
    const r = unit * (i === 0 ? rng.range(0.05, 0.065) : rng.range(0.025, 0.045));
    defs.push(
      el(
        'filter',
        { id: `ghost${i}`, x: '-50%', y: '-50%', width: '200%', height: '200%', 'color-interpolation-filters': FILTER_SPACE },
        el('feGaussianBlur', { stdDeviation: r / 3 }),
      ),
    );
    body.push(
      el('circle', {
        cx: sun.x + (w / 2 - sun.x) * t,
        cy: sun.y + (h / 2 - sun.y) * t,
        r,
        fill: hex(mix(palette.sun, i % 2 === 0 ? palette.accent : white, 0.3)),
        'fill-opacity': rng.range(0.18, 0.32),
        filter: `url(#ghost${i})`,
      }),
    );
  }
  body.push(
    el('circle', {
      cx: sun.x + (w / 2 - sun.x) * 1.25,
      cy: sun.y + (h / 2 - sun.y) * 1.25,
      r: unit * 0.018,
      fill: hex(palette.sun),
      'fill-opacity': 0.25,
    }),
  );

  // An out-of-focus foreground shadow in one corner, as if shot past a bank.
  const cornerX = rng.chance(0.5) ? 0 : w;
  defs.push(el('radialGradient', { id: 'corner' }, stop(0, palette.shade, 0.85) + stop(0.6, palette.shade, 0.45) + stop(1, palette.shade, 0)));
  body.push(el('ellipse', { cx: cornerX, cy: h, rx: w * rng.range(0.25, 0.4), ry: (h - horizon) * rng.range(0.45, 0.7), fill: 'url(#corner)' }));

  // Film grain: noise is computed for one tile only, then tiled; per-pixel
  // turbulence over the whole frame would cost several hundred ms.
  defs.push(
    el(
      'filter',
      { id: 'noise', x: 0, y: 0, width: '100%', height: '100%', 'color-interpolation-filters': FILTER_SPACE },
      el('feTurbulence', { type: 'fractalNoise', baseFrequency: 0.85, numOctaves: 2, seed: rng.int(1, 9999), stitchTiles: 'stitch' }) +
        el('feColorMatrix', { type: 'matrix', values: '1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 0 0 0 0 1' }),
    ),
  );
  defs.push(
    el('pattern', { id: 'grain', width: GRAIN_TILE, height: GRAIN_TILE, patternUnits: 'userSpaceOnUse' }, el('rect', { width: GRAIN_TILE, height: GRAIN_TILE, filter: 'url(#noise)' })),
  );
  body.push(el('rect', { width: w, height: h, fill: 'url(#grain)', 'fill-opacity': 0.24, style: 'mix-blend-mode:overlay' }));

  // The vignette is transparent inside half its radius, so only the frame around
  // that ellipse is painted; a full-frame radial gradient costs ~20 ms more.
  defs.push(el('radialGradient', { id: 'vignette', cx: '50%', cy: '50%', r: '75%' }, stop(0.5, hsl(0, 0, 0), 0) + stop(1, hsl(0, 0, 0), 0.55)));
  const hx = w * 0.37;
  const hy = h * 0.37;
  body.push(
    el('path', {
      d: `M0 0H${w}V${h}H0ZM${fmt(w / 2 - hx)} ${fmt(h / 2)}a${fmt(hx)} ${fmt(hy)} 0 1 0 ${fmt(hx * 2)} 0a${fmt(hx)} ${fmt(hy)} 0 1 0 ${fmt(-hx * 2)} 0Z`,
      'fill-rule': 'evenodd',
      fill: 'url(#vignette)',
    }),
  );

  return { defs: defs.join(''), body: body.join('') };
}
