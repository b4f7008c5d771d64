import { z } from 'zod';

export const STYLES = ['PHOTOGRAPHIC', 'VECTOR_IMAGE', 'ILLUSTRATION', '3D'] as const;
export const SIZES = ['LANDSCAPE', 'PORTRAIT', 'SQUARE'] as const;
export const PRIORITIES = ['high', 'normal', 'low'] as const;
export const MAX_TOPIC_LENGTH = 4000;
export const MAX_METADATA_BYTES = 4096;

export type Style = (typeof STYLES)[number];
export type Size = (typeof SIZES)[number];
export type Priority = (typeof PRIORITIES)[number];

/** Pixel size each requested aspect renders at with the builtin provider. */
export const SIZE_DIMENSIONS: Record<Size, { width: number; height: number }> = {
  LANDSCAPE: { width: 1344, height: 768 },
  PORTRAIT: { width: 768, height: 1344 },
  SQUARE: { width: 1024, height: 1024 },
};

export const styleSchema = z.enum(STYLES, { error: () => `must be one of ${STYLES.join(', ')}` });
export const sizeSchema = z.enum(SIZES, { error: () => `must be one of ${SIZES.join(', ')}` });

/** C0 and C1 controls and DEL, but tab, line feed, carriage return and NEL (U+0085, a line break too). */
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u0084\u0086-\u009f]/;
/** In a `u` regex a well-formed pair is one code point, so only a surrogate on its own matches. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * What shows nothing: white space (NEL and the other line breaks, no-break and ideographic
 * spaces) and the characters Unicode says to draw as nothing (zero-width spaces and joiners,
 * word joiner, BOM, variation selectors, Hangul fillers).
 */
const INVISIBLE = /[\p{White_Space}\p{Default_Ignorable_Code_Point}]/gu;

const topicSchema = z
  .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
  // a topic of nothing visible would be generated from nothing
  .refine((t) => t.replace(INVISIBLE, '').length > 0, { message: 'must not be empty' })
  // a prompt is text: it goes upstream, into logs and back out as JSON, where these break or vanish
  .refine((t) => !CONTROL_CHARACTER.test(t), { message: 'must not contain control characters (tabs and line breaks are fine)' })
  .refine((t) => !LONE_SURROGATE.test(t), { message: 'must be valid Unicode (it has an unpaired surrogate)' })
  // characters as people count them (code points), not UTF-16 units: an emoji is one
  .refine((t) => t.length <= MAX_TOPIC_LENGTH || [...t].length <= MAX_TOPIC_LENGTH, { message: `must be at most ${MAX_TOPIC_LENGTH} characters` })
  // the rules above as far as JSON Schema can say them, its lengths counting code points too: the
  // pattern asks for something other than white space and refuses the control characters; topics
  // of invisible characters alone and unpaired surrogates are left to the description (a pattern
  // read without the `u` flag cannot tell a lone surrogate from half of a pair)
  .meta({
    minLength: 1,
    maxLength: MAX_TOPIC_LENGTH,
    pattern: `^(?=[\\s\\S]*\\S)[^${CONTROL_CHARACTER.source.slice(1, -1)}]*$`,
    description: `What to generate: 1 to ${MAX_TOPIC_LENGTH} characters (counted in code points), not only white space or invisible characters, valid Unicode, no control characters but tab and line breaks`,
  });

/** The seed's request body, exactly: `{ topic, style?, size? }`. */
export const generationRequestSchema = z.strictObject({
  topic: topicSchema,
  style: styleSchema.default('PHOTOGRAPHIC'),
  size: sizeSchema.default('LANDSCAPE'),
});
export type GenerationRequest = z.output<typeof generationRequestSchema>;

/**
 * The request as kept in a record: read back as it was accepted. What a submission must pass
 * is checked when it is made, and a rule added later must not make records already kept
 * unreadable.
 */
export const storedRequestSchema = z.object({
  topic: z.string(),
  style: styleSchema,
  size: sizeSchema,
});

/** Bytes of `value` as JSON; Infinity for a value nested too deep to serialize (far past any byte limit). */
function jsonBytes(value: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(value));
  } catch {
    return Infinity;
  }
}

/**
 * A client's own JSON object, kept and returned untouched: checked, not rebuilt (a rebuilt
 * record would drop a `__proto__` key, which assignment turns into a prototype).
 */
const jsonObject = () => z.custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), { error: 'must be a JSON object' });

/** Metadata as kept in a record (checked when it was given): read back as it was written. */
export const storedMetadataSchema = jsonObject().meta({ type: 'object', additionalProperties: true, description: 'The metadata given at submission, untouched' });

/**
 * Where in `value` a number sits that could not come back as sent: an integer beyond what a JSON
 * number keeps exactly (±2^53 − 1; parsed, it has already lost digits), or one past the largest
 * double (parsed as ±Infinity, which JSON writes back as null). Walks without recursion.
 */
function unkeptNumber(value: unknown): { at: string; infinite: boolean } | undefined {
  const stack: [unknown, string][] = [[value, '']];
  while (stack.length) {
    const [v, at] = stack.pop() as [unknown, string];
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { at, infinite: true };
      if (Number.isInteger(v) && !Number.isSafeInteger(v)) return { at, infinite: false };
    } else if (v !== null && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) stack.push([child, at ? `${at}.${k}` : k]);
    }
  }
  return undefined;
}

export const metadataSchema = jsonObject()
  .refine((m) => jsonBytes(m) <= MAX_METADATA_BYTES, {
    message: `must be at most ${MAX_METADATA_BYTES} bytes as JSON`,
    abort: true,
  })
  .superRefine((m, ctx) => {
    const found = unkeptNumber(m);
    if (found?.infinite) ctx.addIssue({ code: 'custom', message: `holds a number past the largest a JSON number keeps (about 1.8e308) at ${found.at}: send it as a string`, input: m });
    else if (found) ctx.addIssue({ code: 'custom', message: `holds an integer past ±9007199254740991 at ${found.at}, which JSON numbers cannot keep exactly: send it as a string`, input: m });
  })
  .meta({ type: 'object', additionalProperties: true, description: `Any JSON object of at most ${MAX_METADATA_BYTES} bytes, returned untouched; integers within ±(2^53 − 1) and numbers within the range of a double (send others as strings)` });

export const WEBHOOK_EVENTS = [
  'generation.started',
  'generation.progress',
  'generation.completed',
  'generation.failed',
  'generation.cancelled',
  'batch.completed',
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** The events a generation's own webhook can ask for: all but the batch's. */
export const GENERATION_WEBHOOK_EVENTS = WEBHOOK_EVENTS.filter((e) => e !== 'batch.completed');

const webhookEventsSchema = z.array(z.enum(WEBHOOK_EVENTS)).min(1);

export const webhookTargetSchema = z.strictObject({
  url: z
    .url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL' })
    .max(2048, { error: 'must be at most 2048 characters' })
    // what zod asks of an http(s) URL before parsing it: the scheme and `//`, after any white space it trims
    .meta({ pattern: '^\\s*[Hh][Tt][Tt][Pp][Ss]?://', description: 'An absolute http or https URL' }),
  events: webhookEventsSchema.optional(),
});
export type WebhookTarget = z.output<typeof webhookTargetSchema>;

/** A generation's own webhook: batch.completed is a batch's event, which a generation never sends. */
const generationWebhookSchema = webhookTargetSchema
  // parsed as any webhook's events, so batch.completed is refused with the message below, not as
  // an unknown event; the document lists only the events a generation sends
  .extend({ events: webhookEventsSchema.meta({ items: { type: 'string', enum: [...GENERATION_WEBHOOK_EVENTS] } }).optional() })
  .refine((w) => !w.events?.includes('batch.completed'), {
    message: 'batch.completed is sent to a batch webhook only: give it with the batch (POST /v1/batches)',
    path: ['events'],
  });

/** Body of `POST /v1/generations`: the seed request plus delivery options. */
export const createGenerationSchema = z.strictObject({
  topic: topicSchema,
  style: styleSchema.default('PHOTOGRAPHIC'),
  size: sizeSchema.default('LANDSCAPE'),
  webhook: generationWebhookSchema.optional(),
  // null, as a GET answers for none, is none
  metadata: metadataSchema.nullable().optional(),
  priority: z.enum(PRIORITIES).default('normal'),
});
export type CreateGenerationInput = z.output<typeof createGenerationSchema>;

export interface FieldError {
  path: string;
  message: string;
}

const NOUNS: Record<string, string> = { string: 'a string', number: 'a number', int: 'a whole number', boolean: 'true or false', object: 'a JSON object', array: 'an array', record: 'a JSON object' };
/** `1 item`, `2 items`: counts in messages. */
export const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

/**
 * Messages for problems a schema names no message of its own for, in the words the rest of the
 * API uses ("must be one of ..."), instead of zod's ("Invalid option: expected one of ...").
 * Given to every parse of client input; a message a schema sets itself still wins.
 */
export function inputIssueMessage(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      return `must be ${NOUNS[issue.expected] ?? issue.expected}`;
    case 'invalid_value':
      if (issue.input === undefined) return 'is required';
      return issue.values.length === 1 ? `must be ${String(issue.values[0])}` : `must be one of ${issue.values.map(String).join(', ')}`;
    case 'too_small': {
      const n = Number(issue.minimum);
      if (issue.origin === 'array' || issue.origin === 'set') return `must have at least ${plural(n, 'item')}`;
      if (issue.origin === 'string') return `must be at least ${plural(n, 'character')}`;
      return issue.inclusive === false ? `must be more than ${n}` : `must be at least ${n}`;
    }
    case 'too_big': {
      const n = Number(issue.maximum);
      if (issue.origin === 'array' || issue.origin === 'set') return `must have at most ${plural(n, 'item')}`;
      if (issue.origin === 'string') return `must be at most ${plural(n, 'character')}`;
      return issue.inclusive === false ? `must be less than ${n}` : `must be at most ${n}`;
    }
    case 'invalid_format':
      return issue.format === 'regex' ? 'is not in the expected form' : `must be a valid ${issue.format}`;
    default:
      return undefined;
  }
}

/** Parse options for client input: see inputIssueMessage. */
export const INPUT_PARSE = { error: inputIssueMessage } as const;

/** Flattens zod issues into `{ path, message }` pairs, naming each unknown key on its own. */
export function toFieldErrors(error: z.ZodError, pathPrefix: (string | number)[] = []): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of error.issues) {
    const base = [...pathPrefix, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...base, key].join('.'), message: 'is not a known field' });
    } else {
      out.push({ path: base.length ? base.join('.') : '(body)', message: issue.message });
    }
  }
  return out;
}
