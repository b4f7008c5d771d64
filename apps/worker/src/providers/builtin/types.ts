import type { Layout } from './layout';
import type { Palette } from './palette';
import type { Rng } from './prng';

export interface SceneContext {
  readonly rng: Rng;
  readonly palette: Palette;
  readonly layout: Layout;
}

/** Styles hand back the two halves of the document; scene.ts wraps them. */
export interface Rendered {
  readonly defs: string;
  readonly body: string;
}

export type StyleRenderer = (ctx: SceneContext) => Rendered;
