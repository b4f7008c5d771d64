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

it('keeps metadata as the client sent it, a `__proto__` key included; refuses what is not a JSON object', () => {
  const sent = JSON.parse('{"__proto__":{"x":1},"tags":[],"n":0.30000000000000004}') as object;
  const parsed = createGenerationSchema.parse({ topic: 'x', metadata: sent });
  expect(JSON.stringify(parsed.metadata)).toBe('{"__proto__":{"x":1},"tags":[],"n":0.30000000000000004}');
  for (const bad of [[1], 'text', 7, null]) {
    const result = createGenerationSchema.safeParse({ topic: 'x', metadata: bad });
    expect(result.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['metadata', 'must be a JSON object']]);
  }
});

it('refuses a topic that is not text: control characters and unpaired surrogates', () => {
  for (const topic of ['a\u0000b', 'bell\u0007', 'esc\u001b[31m', 'del\u007f']) {
    const r = generationRequestSchema.safeParse({ topic });
    expect(r.success ? topic : toFieldErrors(r.error!)).toEqual([{ path: 'topic', message: 'must not contain control characters (tabs and line breaks are fine)' }]);
  }
  for (const topic of ['lone \ud800 high', 'lone \udc00 low', 'ends high \ud83e']) {
    const r = generationRequestSchema.safeParse({ topic });
    expect(r.success ? topic : toFieldErrors(r.error!)).toEqual([{ path: 'topic', message: 'must be valid Unicode (it has an unpaired surrogate)' }]);
  }
  for (const topic of ['two\nlines', 'tab\there', 'crlf\r\n', '🦊 fox', 'ünïcödé 漢字']) expect(generationRequestSchema.safeParse({ topic }).success).toBe(true);
});
