import { z } from 'zod';
import { createGenerationSchema, generationRequestSchema, INPUT_PARSE, toFieldErrors, webhookTargetSchema } from './request';

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

it('keeps metadata as the client sent it, a `__proto__` key included; takes null as none; refuses what is not a JSON object', () => {
  const sent = JSON.parse('{"__proto__":{"x":1},"tags":[],"n":0.30000000000000004}') as object;
  const parsed = createGenerationSchema.parse({ topic: 'x', metadata: sent });
  expect(JSON.stringify(parsed.metadata)).toBe('{"__proto__":{"x":1},"tags":[],"n":0.30000000000000004}');
  expect(createGenerationSchema.parse({ topic: 'x', metadata: null }).metadata).toBeNull();
  for (const bad of [[1], 'text', 7, true]) {
    const result = createGenerationSchema.safeParse({ topic: 'x', metadata: bad });
    expect(result.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['metadata', 'must be a JSON object']]);
  }
});

it('refuses a topic that is not text: control characters and unpaired surrogates', () => {
  for (const topic of ['a\u0000b', 'bell\u0007', 'esc\u001b[31m', 'del\u007f', 'c1 csi\u009b31m', 'c1\u0080', 'c1\u009f']) {
    const r = generationRequestSchema.safeParse({ topic });
    expect(r.success ? topic : toFieldErrors(r.error!)).toEqual([{ path: 'topic', message: 'must not contain control characters (tabs and line breaks are fine)' }]);
  }
  for (const topic of ['lone \ud800 high', 'lone \udc00 low', 'ends high \ud83e']) {
    const r = generationRequestSchema.safeParse({ topic });
    expect(r.success ? topic : toFieldErrors(r.error!)).toEqual([{ path: 'topic', message: 'must be valid Unicode (it has an unpaired surrogate)' }]);
  }
  for (const topic of ['two\nlines', 'tab\there', 'crlf\r\n', 'nel\u0085line', '🦊 fox', 'ünïcödé 漢字', 'nbsp\u00a0ÿ']) expect(generationRequestSchema.safeParse({ topic }).success).toBe(true);
  // line breaks alone are no topic
  expect(toFieldErrors(generationRequestSchema.safeParse({ topic: '\u0085\n' }).error!)).toEqual([{ path: 'topic', message: 'must not be empty' }]);
  // nor is what draws as nothing: zero-width space, joiners, word joiner, BOM, no-break and ideographic spaces, Hangul filler, a variation selector
  for (const topic of ['\u200b', '\u200c\u200d', ' \u2060 ', '\ufeff', '\u00a0\u3000', '\u3164', '\ufe0f', '\u200b\n\u200b']) {
    const r = generationRequestSchema.safeParse({ topic });
    expect(r.success ? topic : toFieldErrors(r.error!)).toEqual([{ path: 'topic', message: 'must not be empty' }]);
  }
  // with something visible, they stay (a joined emoji, a word with a zero-width joiner)
  for (const topic of ['👩\u200d🚀 astronaut', 'a\u200bb', '❤\ufe0f']) expect(generationRequestSchema.safeParse({ topic }).success).toBe(true);
});

it('words every kind of problem in client input the way the API does, and keeps a schema’s own message', () => {
  const schema = z.strictObject({
    kind: z.enum(['a', 'b']),
    tags: z.array(z.string()).min(1).max(2),
    count: z.coerce.number().int().min(1).max(10),
    whole: z.number().int(),
    code: z.string().regex(/^c_/),
    nested: z.object({ flag: z.boolean() }),
    name: z.string().min(2).max(3),
    own: z.string().regex(/^x/, { error: 'must start with x' }),
  });
  const r = schema.safeParse({ kind: 'q', tags: [], count: 'abc', whole: 1.5, code: 'zz', nested: 'no', name: 'abcd', own: 'y' }, INPUT_PARSE);
  expect(toFieldErrors(r.error!)).toEqual([
    { path: 'kind', message: 'must be one of a, b' },
    { path: 'tags', message: 'must have at least 1 item' },
    { path: 'count', message: 'must be a number' },
    { path: 'whole', message: 'must be a whole number' },
    { path: 'code', message: 'is not in the expected form' },
    { path: 'nested', message: 'must be a JSON object' },
    { path: 'name', message: 'must be at most 3 characters' },
    { path: 'own', message: 'must start with x' },
  ]);
  const more = schema.safeParse({ tags: ['a', 'b', 'c'], count: '11', nested: { flag: 'yes' } }, INPUT_PARSE);
  expect(toFieldErrors(more.error!)).toEqual(
    expect.arrayContaining([
      { path: 'kind', message: 'is required' },
      { path: 'tags', message: 'must have at most 2 items' },
      { path: 'count', message: 'must be at most 10' },
      { path: 'nested.flag', message: 'must be true or false' },
    ]),
  );
  // the request's own schema, through the same options
  const webhook = createGenerationSchema.safeParse({ topic: 'x', priority: 'urgent', webhook: { url: 'https://a.example', events: [] } }, INPUT_PARSE);
  expect(toFieldErrors(webhook.error!)).toEqual([
    { path: 'webhook.events', message: 'must have at least 1 item' },
    { path: 'priority', message: 'must be one of high, normal, low' },
  ]);
});

it('refuses metadata numbers that JSON cannot give back as sent (inexact integers, past the largest double), naming where; keeps every other number', () => {
  const sent = JSON.parse('{"order":{"ids":[1,12345678901234567890]},"n":9007199254740991,"f":0.1,"e":1e-7}') as object;
  const r = createGenerationSchema.safeParse({ topic: 'x', metadata: sent }, INPUT_PARSE);
  expect(toFieldErrors(r.error!)).toEqual([{ path: 'metadata', message: 'holds an integer past ±9007199254740991 at order.ids.1, which JSON numbers cannot keep exactly: send it as a string' }]);
  for (const [text, at] of [
    ['{"a":{"b":[2,1e400]}}', 'a.b.1'],
    ['{"n":-1e400}', 'n'],
  ] as const) {
    const infinite = createGenerationSchema.safeParse({ topic: 'x', metadata: JSON.parse(text) }, INPUT_PARSE);
    expect(toFieldErrors(infinite.error!)).toEqual([{ path: 'metadata', message: `holds a number past the largest a JSON number keeps (about 1.8e308) at ${at}: send it as a string` }]);
  }
  const fine = JSON.parse('{"n":9007199254740991,"m":-9007199254740991,"f":0.1,"e":1e-7,"tiny":1.5e-300,"id":"12345678901234567890"}') as object;
  expect(JSON.stringify(createGenerationSchema.parse({ topic: 'x', metadata: fine }).metadata)).toBe(JSON.stringify(fine));
});

it('a generation webhook refuses batch.completed, which only a batch sends, and names an over-long URL as such', () => {
  const batchEvent = createGenerationSchema.safeParse({ topic: 'x', webhook: { url: 'https://a.example/', events: ['generation.completed', 'batch.completed'] } }, INPUT_PARSE);
  expect(toFieldErrors(batchEvent.error!)).toEqual([{ path: 'webhook.events', message: 'batch.completed is sent to a batch webhook only: give it with the batch (POST /v1/batches)' }]);
  const long = createGenerationSchema.safeParse({ topic: 'x', webhook: { url: `https://a.example/${'x'.repeat(2100)}` } }, INPUT_PARSE);
  expect(toFieldErrors(long.error!)).toEqual([{ path: 'webhook.url', message: 'must be at most 2048 characters' }]);
  expect(createGenerationSchema.safeParse({ topic: 'x', webhook: { url: 'https://a.example/', events: ['generation.completed', 'generation.failed'] } }).success).toBe(true);
  // a batch's webhook takes it (its items' records carry that webhook)
  expect(webhookTargetSchema.safeParse({ url: 'https://a.example/', events: ['batch.completed'] }).success).toBe(true);
});
