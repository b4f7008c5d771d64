import { hex, hsl, mix, shift, type Hsl } from '../color';
import { ridgeY } from '../layout';
import { coniferOutline } from '../shapes';
import { el, polyPath, smoothPath, type Point } from '../svg';
import type { Rendered, SceneContext } from '../types';

// Blurs and noise are the expensive parts in librsvg; filters in sRGB space skip
// the linearRGB round trip and roughly halve their cost with no visible change.
const FILTER_SPACE = 'sRGB';
const GRAIN_TILE = 256;

const stop = (offset: number, color: Hsl, opacity = 1): string =>
  el('stop', { offset, 'stop-color': hex(color), 'stop-opacity': opacity === 1 ? undefined : opacity });

export function renderPhotographic({ rng, palette, layout }: SceneContext): Rendered {
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

  // Radial gradients cost per covered pixel in cairo, so the glow is a circle, not a full-frame rect.
  const glowR = unit * 0.62;
  defs.push(
    el(
      'radialGradient',
      { id: 'glow', cx: sun.x, cy: sun.y, r: glowR, gradientUnits: 'userSpaceOnUse' },
      stop(0, palette.sun, 0.9) + stop(0.12, palette.sun, 0.55) + stop(0.45, palette.horizon, 0.2) + stop(1, palette.horizon, 0),
    ),
  );
  body.push(el('circle', { cx: sun.x, cy: sun.y, r: glowR, fill: 'url(#glow)' }));

  // Soft cloud banks and light leaks: the "large blurred blobs" a lens produces.
  const blobCount = rng.int(3, 4);
  for (let i = 0; i < blobCount; i++) {
    const rx = w * rng.range(0.1, 0.2);
    const ry = h * rng.range(0.02, 0.045);
    const sigma = ry * 0.7;
    const pad = Math.ceil(((3 * sigma) / (2 * ry)) * 100);
    const padX = Math.ceil(((3 * sigma) / (2 * rx)) * 100);
    defs.push(
      el(
        'filter',
        { id: `blur${i}`, x: `-${padX}%`, y: `-${pad}%`, width: `${100 + 2 * padX}%`, height: `${100 + 2 * pad}%`, 'color-interpolation-filters': FILTER_SPACE },
        el('feGaussianBlur', { stdDeviation: sigma }),
      ),
    );
    const tint = mix(palette.horizon, white, rng.range(0.2, 0.6));
    body.push(
      el('ellipse', {
        cx: rng.range(0, w),
        cy: rng.range(horizon * 0.12, horizon * 0.8),
        rx,
        ry,
        fill: hex(tint),
        'fill-opacity': rng.range(0.35, 0.6),
        filter: `url(#blur${i})`,
      }),
    );
  }

  const sunSigma = sun.r * 0.18;
  defs.push(
    el('filter', { id: 'sunblur', x: '-50%', y: '-50%', width: '200%', height: '200%', 'color-interpolation-filters': FILTER_SPACE }, el('feGaussianBlur', { stdDeviation: sunSigma })),
  );
  body.push(el('circle', { cx: sun.x, cy: sun.y, r: sun.r * 0.75, fill: hex(mix(palette.sun, white, 0.5)), filter: 'url(#sunblur)' }));

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
    body.push(el('path', { d: smoothPath(outline) + `L${w} ${horizon + unit * 0.05}L0 ${horizon + unit * 0.05}Z`, fill: `url(#ridge${i})` }));
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
      d: `M0 0H${w}V${h}H0Z M${w / 2 - hx} ${h / 2}a${hx} ${hy} 0 1 0 ${hx * 2} 0a${hx} ${hy} 0 1 0 ${-hx * 2} 0Z`,
      'fill-rule': 'evenodd',
      fill: 'url(#vignette)',
    }),
  );

  return { defs: defs.join(''), body: body.join('') };
}
