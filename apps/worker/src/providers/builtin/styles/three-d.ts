import { hex, hsl, mix, shift, type Hsl } from '../color';
import { el, fmt, points, type Point } from '../svg';
import type { Rendered, SceneContext } from '../types';

const BLACK = hsl(0, 0, 0);
const WHITE = hsl(0, 0, 1);

const stop = (offset: number, color: Hsl, opacity = 1): string =>
  el('stop', { offset, 'stop-color': hex(color), 'stop-opacity': opacity === 1 ? undefined : opacity });

const add = (a: Point, b: Point, k = 1): Point => ({ x: a.x + b.x * k, y: a.y + b.y * k });

/**
 * A clay-render look: studio backdrop, perspective floor grid, primitives lit
 * by one key light with soft contact shadows. Everything is gradients, which
 * librsvg fills quickly; no filters at all.
 */
export function renderThreeD({ rng, palette, layout }: SceneContext): Rendered {
  const { width: w, height: h, lightFromLeft } = layout;
  const defs: string[] = [];
  const body: string[] = [];
  // A slightly higher horizon than the landscapes: the floor is the stage here.
  const vy = layout.horizon * rng.range(0.72, 0.85);
  const vx = w * (0.5 + rng.jitter(0.12));
  const floorDepth = h - vy;
  // +1 when the key light is on the right: highlights go right, shadows fall left.
  const side = lightFromLeft ? -1 : 1;

  const backdropTop = mix(palette.sky, palette.shade, 0.45);
  const haze = mix(palette.horizon, palette.sky, 0.35);
  defs.push(
    el(
      'linearGradient',
      { id: 'backdrop', x1: 0, y1: 0, x2: 0, y2: vy, gradientUnits: 'userSpaceOnUse' },
      stop(0, backdropTop) + stop(0.7, mix(backdropTop, haze, 0.7)) + stop(1, haze),
    ),
  );
  body.push(el('rect', { width: w, height: vy + 1, fill: 'url(#backdrop)' }));
  // Key-light spill on the backdrop, on the lit side.
  defs.push(el('radialGradient', { id: 'spill' }, stop(0, mix(haze, WHITE, 0.5), 0.55) + stop(1, haze, 0)));
  body.push(el('ellipse', { cx: vx + side * w * 0.22, cy: vy * 0.55, rx: w * 0.4, ry: vy * 0.55, fill: 'url(#spill)' }));

  const floorNear = mix(palette.land, palette.shade, 0.35);
  defs.push(
    el(
      'linearGradient',
      { id: 'floor', x1: 0, y1: vy, x2: 0, y2: h, gradientUnits: 'userSpaceOnUse' },
      stop(0, haze) + stop(0.35, mix(haze, palette.land, 0.55)) + stop(1, floorNear),
    ),
  );
  body.push(el('rect', { x: 0, y: vy, width: w, height: floorDepth, fill: 'url(#floor)' }));

  // Perspective grid: with the camera at height 1 and focal length floorDepth,
  // the bottom edge sits at depth z = 1 and screen y = vy + floorDepth / z.
  // Cells are sized from the frame's short side so portrait and landscape match.
  const cell = (layout.unit * rng.range(0.1, 0.15)) / floorDepth;
  const gridColor = mix(haze, WHITE, 0.35);
  defs.push(
    el(
      'linearGradient',
      { id: 'gridfade', x1: 0, y1: vy, x2: 0, y2: h, gradientUnits: 'userSpaceOnUse' },
      stop(0, gridColor, 0) + stop(0.25, gridColor, 0.25) + stop(1, gridColor, 0.6),
    ),
  );
  let grid = '';
  // Stop where rows would be closer than ~3 px: beyond that they only alias.
  const zFar = Math.sqrt((floorDepth * cell) / 3);
  for (let z = 1; z < zFar; z += cell) grid += `M0 ${fmt(vy + floorDepth / z)}H${w}`;
  const reach = Math.ceil((w / floorDepth) * zFar * 0.5 / cell) + 1;
  const offset = rng.range(0, cell);
  for (let k = -reach; k <= reach; k++) {
    // Each column runs from the far end of the grid to well below the frame (z = 0.5).
    const X = k * cell + offset;
    grid += `M${fmt(vx + (floorDepth * X) / zFar)} ${fmt(vy + floorDepth / zFar)}L${fmt(vx + floorDepth * X * 2)} ${fmt(vy + floorDepth * 2)}`;
  }
  body.push(el('path', { d: grid, fill: 'none', stroke: 'url(#gridfade)', 'stroke-width': 1.2 }));

  defs.push(el('radialGradient', { id: 'shadow' }, stop(0, BLACK, 0.5) + stop(0.55, BLACK, 0.22) + stop(1, BLACK, 0)));
  defs.push(el('radialGradient', { id: 'spec' }, stop(0, WHITE, 0.9) + stop(1, WHITE, 0)));

  const materials: Hsl[] = [palette.accent, shift(palette.sky, { s: 0.1, l: -0.05 }), shift(palette.land, { s: 0.15, l: 0.12 }), shift(palette.sun, { s: -0.2, l: -0.22 }), mix(palette.accent, palette.sky, 0.5)];

  const objects = layout.props.map((prop) => ({ prop, y: vy + floorDepth * (0.25 + 0.7 * prop.depth) })).sort((a, b) => a.y - b.y);
  objects.forEach(({ prop, y }, i) => {
    const nearness = (y - vy) / floorDepth;
    // Screen size is proportional to nearness: that is the perspective divide.
    const size = nearness * layout.unit * rng.range(0.3, 0.4);
    const x = Math.min(w - size * 0.7, Math.max(size * 0.7, prop.x));
    const squash = 0.22 + 0.25 * nearness;
    const base = materials[Math.floor(prop.tone * materials.length)] ?? palette.accent;
    const dark = mix(base, palette.shade, 0.6);
    const light = mix(base, WHITE, 0.55);

    // Soft shadow cast away from the key light, plus a tight contact shadow,
    // both centred on the primitive's footprint.
    const shadows = (cx: number, cy: number, radius: number): void => {
      body.push(el('ellipse', { cx: cx - side * radius * 0.6, cy, rx: radius * 1.5, ry: radius * 1.5 * squash, fill: 'url(#shadow)' }));
      body.push(el('ellipse', { cx, cy, rx: radius * 0.9, ry: radius * 0.9 * squash, fill: 'url(#shadow)' }));
    };

    if (prop.variant < 0.42) {
      const r = size * 0.5;
      defs.push(
        el(
          'radialGradient',
          { id: `m${i}`, cx: 0.5, cy: 0.5, r: 0.5, fx: 0.5 + side * 0.2, fy: 0.3 },
          stop(0, light) + stop(0.3, shift(base, { l: 0.05 })) + stop(0.8, mix(base, dark, 0.6)) + stop(1, mix(dark, haze, 0.25)),
        ),
      );
      shadows(x, y, r * 0.8);
      body.push(el('circle', { cx: x, cy: y - r, r, fill: `url(#m${i})` }));
      body.push(el('ellipse', { cx: x + side * r * 0.38, cy: y - r * 1.42, rx: r * 0.22, ry: r * 0.15, fill: 'url(#spec)' }));
    } else if (prop.variant < 0.8) {
      const s = size * 0.72;
      const theta = rng.range(0.3, 1.25);
      const u = { x: Math.cos(theta), y: Math.sin(theta) * squash };
      const v = { x: -Math.sin(theta), y: Math.cos(theta) * squash };
      const up = { x: 0, y: -s };
      const c = { x, y: y - (u.y + v.y) * s * 0.5 };
      const corner = (a: number, b: number): Point => add(add(c, u, (a * s) / 2), v, (b * s) / 2);
      shadows(c.x, c.y, s * 0.62);
      const faceU = [corner(1, -1), corner(1, 1), add(corner(1, 1), up), add(corner(1, -1), up)];
      const faceV = [corner(-1, 1), corner(1, 1), add(corner(1, 1), up), add(corner(-1, 1), up)];
      const top = [corner(-1, -1), corner(1, -1), corner(1, 1), corner(-1, 1)].map((p) => add(p, up));
      // Lambert-ish: the face whose normal points towards the light side is brighter.
      const lit = (n: Point): number => 0.5 + 0.35 * side * Math.sign(n.x) * Math.min(1, Math.abs(n.x) * 1.4);
      const faces: Array<[Point[], number]> = [
        [faceU, lit(u)],
        [faceV, lit(v)],
      ];
      faces.forEach(([face, k], f) => {
        const col = mix(dark, light, k);
        defs.push(el('linearGradient', { id: `m${i}f${f}`, x1: 0, y1: 0, x2: 0, y2: 1 }, stop(0, shift(col, { l: 0.04 })) + stop(1, mix(col, dark, 0.35))));
        body.push(el('polygon', { points: points(face), fill: `url(#m${i}f${f})` }));
      });
      defs.push(el('linearGradient', { id: `m${i}t`, x1: lightFromLeft ? 0 : 1, y1: 0, x2: lightFromLeft ? 1 : 0, y2: 1 }, stop(0, mix(light, WHITE, 0.2)) + stop(1, mix(base, light, 0.6))));
      body.push(el('polygon', { points: points(top), fill: `url(#m${i}t)` }));
      // Bevel highlight along the front top edges.
      body.push(el('polyline', { points: points([top[0] as Point, top[3] as Point, top[2] as Point]), fill: 'none', stroke: hex(mix(light, WHITE, 0.5)), 'stroke-opacity': 0.7, 'stroke-width': Math.max(1, s * 0.012), 'stroke-linejoin': 'round' }));
    } else {
      const r = size * 0.38;
      const ry = r * squash;
      const height = size * rng.range(0.7, 1.1);
      // Cylinder shading runs across the body: rim, highlight on the lit side, core shadow.
      const ramp: Array<[number, Hsl]> = [
        [0, mix(base, light, 0.3)],
        [0.28, light],
        [0.6, base],
        [1, dark],
      ];
      const ordered = lightFromLeft ? ramp : ramp.map(([o, col]): [number, Hsl] => [1 - o, col]).reverse();
      defs.push(el('linearGradient', { id: `m${i}`, x1: 0, y1: 0, x2: 1, y2: 0 }, ordered.map(([o, col]) => stop(o, col)).join('')));
      const bottom = y - ry;
      shadows(x, bottom, r);
      body.push(
        el('path', {
          d: `M${fmt(x - r)} ${fmt(bottom - height)}V${fmt(bottom)}A${fmt(r)} ${fmt(ry)} 0 0 0 ${fmt(x + r)} ${fmt(bottom)}V${fmt(bottom - height)}Z`,
          fill: `url(#m${i})`,
        }),
      );
      defs.push(el('linearGradient', { id: `m${i}t`, x1: 0, y1: 0, x2: 0, y2: 1 }, stop(0, mix(light, WHITE, 0.25)) + stop(1, mix(base, light, 0.5))));
      body.push(el('ellipse', { cx: x, cy: bottom - height, rx: r, ry, fill: `url(#m${i}t)` }));
    }
  });

  // Gentle falloff towards the frame edges, like a studio key light.
  defs.push(el('linearGradient', { id: 'falloff', x1: 0, y1: 0, x2: 0, y2: 1 }, stop(0, BLACK, 0.25) + stop(0.25, BLACK, 0) + stop(0.8, BLACK, 0) + stop(1, BLACK, 0.2)));
  body.push(el('rect', { width: w, height: h, fill: 'url(#falloff)' }));

  return { defs: defs.join(''), body: body.join('') };
}
