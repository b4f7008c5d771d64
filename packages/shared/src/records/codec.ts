import { z } from 'zod';
import { generationRecordSchema, STATUSES, type GenerationRecord } from '../schemas/generation';

type FieldKind = 'string' | 'number' | 'json';

/** Strips optional/nullable/default wrappers to the schema that says what a value is. */
function innerType(schema: z.ZodType): z.ZodType {
  let s = schema;
  while (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault) s = s.unwrap() as z.ZodType;
  return s;
}

function kindOf(schema: z.ZodType): FieldKind {
  const inner = innerType(schema);
  if (inner instanceof z.ZodNumber) return 'number';
  if (inner instanceof z.ZodString || inner instanceof z.ZodEnum || inner instanceof z.ZodStringFormat) return 'string';
  return 'json';
}

type FieldSpecs = Record<string, { kind: FieldKind; nullable: boolean }>;

/** How each field of a hash-kept schema is kept in its hash, read off the schema itself. */
function fieldSpecs(schema: z.ZodObject): FieldSpecs {
  return Object.fromEntries(Object.entries(schema.shape).map(([name, s]) => [name, { kind: kindOf(s as z.ZodType), nullable: (s as z.ZodType).safeParse(null).success }]));
}

const FIELDS = fieldSpecs(generationRecordSchema);

/** Record fields whose values are JSON in the hash. */
export const JSON_RECORD_FIELDS = Object.keys(FIELDS).filter((f) => FIELDS[f]?.kind === 'json');

function encodeWith(specs: FieldSpecs, patch: object): string[] {
  const out: string[] = [];
  for (const [field, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    const spec = specs[field.charCodeAt(0) === 63 /* ? */ ? field.slice(1) : field];
    if (!spec) throw new Error(`unknown record field ${field}`);
    if (value === null && !spec.nullable) out.push(field, '');
    else out.push(field, spec.kind === 'json' ? JSON.stringify(value) : String(value));
  }
  return out;
}

function fieldsOf(specs: FieldSpecs, hash: Record<string, string>): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const field in hash) {
    const spec = specs[field];
    const value = hash[field] as string;
    if (!spec || value === '') continue;
    raw[field] = spec.kind === 'json' ? JSON.parse(value) : spec.kind === 'number' ? Number(value) : value;
  }
  return raw;
}

function decodeWith<T extends z.ZodObject>(schema: T, specs: FieldSpecs, hash: Record<string, string>): z.output<T> | null {
  if (!hash.id || !hash.status) return null;
  const raw = fieldsOf(specs, hash);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new Error(`record ${hash.id} does not match its schema: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/**
 * Flattens a (partial) record into hash fields: `undefined` leaves a field as it is, `null`
 * deletes it (an empty value), except where the schema allows null as a value. A field
 * named `?x` is encoded like `x`.
 */
export function encodeFields(patch: object): string[] {
  return encodeWith(FIELDS, patch);
}

/**
 * Strings as one script argument (CREATE_LUA decodes it with cjson): a JSON array. Each is made
 * well-formed first (a lone surrogate becomes U+FFFD, as it would in any argument sent as
 * UTF-8), since Redis's JSON decoder refuses an escaped lone surrogate.
 */
export function packFields(strings: string[]): string {
  return JSON.stringify(strings.map(wellFormed));
}

const wellFormed = (s: string): string => (s as string & { toWellFormed(): string }).toWellFormed();

/** A record from its hash (null when there is none); fields the schema does not know are dropped. */
export function decodeRecord(hash: Record<string, string>): GenerationRecord | null {
  return decodeWith(generationRecordSchema, FIELDS, hash);
}

/**
 * A record from a copy of its hash that a record script made (a webhook snapshot), with the
 * values typed as `decodeRecord` types them but not checked against the schema again: every
 * write to the hash went through the codec. Only the fields a webhook needs are checked, so a
 * damaged copy is refused rather than sent. Null when they are not all there.
 */
export function decodeRecordSnapshot(hash: Record<string, string>): GenerationRecord | null {
  if (!hash.id || !hash.status || !hash.tenant || !hash.createdAt) return null;
  const raw = fieldsOf(FIELDS, hash);
  if (!(STATUSES as readonly unknown[]).includes(raw.status) || typeof raw.request !== 'object' || raw.request === null || !Number.isInteger(raw.progress) || !Number.isInteger(raw.attempts)) {
    return null;
  }
  return raw as GenerationRecord;
}

/** The same conventions for any other record kept as a hash (a batch): one schema, its codec. */
export function hashCodec<T extends z.ZodObject>(schema: T) {
  const specs = fieldSpecs(schema);
  return {
    encode: (patch: Partial<{ [K in keyof z.output<T>]: z.output<T>[K] | null }>) => encodeWith(specs, patch),
    decode: (hash: Record<string, string>) => decodeWith(schema, specs, hash),
  };
}
