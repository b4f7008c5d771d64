import { createGenerationSchema, generationRequestSchema, toFieldErrors } from './request';

it('applies the seed defaults', () => {
  expect(generationRequestSchema.parse({ topic: 'fox' })).toEqual({ topic: 'fox', style: 'PHOTOGRAPHIC', size: 'LANDSCAPE' });
  expect(createGenerationSchema.parse({ topic: 'fox' }).priority).toBe('normal');
});

it('accepts a 4,000-character topic and refuses 4,001', () => {
  expect(generationRequestSchema.safeParse({ topic: 'x'.repeat(4000) }).success).toBe(true);
  const r = generationRequestSchema.safeParse({ topic: 'x'.repeat(4001) });
  expect(r.success).toBe(false);
  expect(toFieldErrors(r.error!)).toEqual([{ path: 'topic', message: 'must be at most 4000 characters' }]);
});

it('counts characters, not UTF-16 units', () => {
  expect(generationRequestSchema.safeParse({ topic: '🦊'.repeat(4000) }).success).toBe(true);
  expect(generationRequestSchema.safeParse({ topic: '🦊'.repeat(4001) }).success).toBe(false);
});

it('names each unknown field and prefixes paths (as batch items need)', () => {
  const r = createGenerationSchema.safeParse({ topic: 'x', foo: 1, bar: 2, webhook: { url: 'https://a.example', extra: true } });
  expect(toFieldErrors(r.error!, [7]).map((e) => e.path).sort()).toEqual(['7.bar', '7.foo', '7.webhook.extra']);
});

it('refuses metadata nested too deep to serialize as too large, never failing on it', () => {
  let deep: Record<string, unknown> = { a: 1 };
  for (let i = 0; i < 20_000; i++) deep = { a: deep };
  const result = createGenerationSchema.safeParse({ topic: 'x', metadata: deep });
  expect(result.success).toBe(false);
  expect(result.error?.issues.map((i) => i.path.join('.'))).toEqual(['metadata']);
});
