import type { Rendered, SceneContext } from '../types';
export function renderIllustration(_ctx: SceneContext): Rendered { return { defs: '', body: '' }; }
