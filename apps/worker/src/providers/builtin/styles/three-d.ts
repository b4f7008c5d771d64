import type { Rendered, SceneContext } from '../types';
export function renderThreeD(_ctx: SceneContext): Rendered { return { defs: '', body: '' }; }
