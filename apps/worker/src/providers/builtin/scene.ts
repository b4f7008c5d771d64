import { makeLayout } from './layout';
import { makePalette } from './palette';
import { createRng, seedFromKey } from './prng';
import { document } from './svg';
import { renderIllustration } from './styles/illustration';
import { renderPhotographic } from './styles/photographic';
import { renderThreeD } from './styles/three-d';
import { renderVector } from './styles/vector';
import { SIZE_DIMENSIONS as DIMENSIONS, type Size, type Style } from '@imagegen/shared';
import type { StyleRenderer } from './types';

export { DIMENSIONS };
export type { Size, Style };

const RENDERERS: Record<Style, StyleRenderer> = {
  PHOTOGRAPHIC: renderPhotographic,
  VECTOR_IMAGE: renderVector,
  ILLUSTRATION: renderIllustration,
  '3D': renderThreeD,
};

/**
 * Deterministic stand-in for a real model: the topic only ever feeds a hash, so
 * the output is safe for any input and byte-identical from run to run.
 */
export function composeScene(input: { topic: string; style: Style; size: Size }): { svg: string; width: number; height: number } {
  // The types already forbid other values; this guards callers that skip validation in plain JS.
  if (!Object.hasOwn(DIMENSIONS, input.size) || !Object.hasOwn(RENDERERS, input.style)) {
    throw new RangeError(`composeScene: unsupported style/size ${JSON.stringify([input.style, input.size]).slice(0, 80)}`);
  }
  const { width, height } = DIMENSIONS[input.size];
  // style and size are closed enums at the end of the key, so no topic can collide with another key.
  const rng = createRng(seedFromKey(`${input.topic}|${input.style}|${input.size}`));
  const palette = makePalette(rng);
  const layout = makeLayout(rng, width, height);
  const { defs, body } = RENDERERS[input.style]({ rng, palette, layout });
  return { svg: document(width, height, defs, body), width, height };
}
