import type { Rendered, SceneContext } from '../types';
export function renderVector(_ctx: SceneContext): Rendered { return { defs: '', body: '' }; }
