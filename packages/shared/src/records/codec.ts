import type { GenerationRecord } from '../schemas/generation';

const JSON_FIELDS = new Set(['request', 'metadata', 'webhook', 'result', 'error', 'original']);
const NUMBER_FIELDS = new Set(['progress', 'attempts', 'batchIndex']);

/** Flattens a (partial) record into hash fields; `undefined` means "leave as is", `null` clears. */
export function encodeFields(patch: object): string[] {
  const out: string[] = [];
  for (const [field, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (value === null && field !== 'metadata') {
      out.push(field, '');
    } else {
      out.push(field, JSON_FIELDS.has(field) ? JSON.stringify(value) : String(value));
    }
  }
  return out;
}

export function decodeRecord(hash: Record<string, string>): GenerationRecord | null {
  if (!hash.id || !hash.status) return null;
  const out: Record<string, unknown> = {};
  for (const [field, raw] of Object.entries(hash)) {
    if (raw === '') continue;
    if (JSON_FIELDS.has(field)) out[field] = JSON.parse(raw);
    else if (NUMBER_FIELDS.has(field)) out[field] = Number(raw);
    else out[field] = raw;
  }
  if (!('metadata' in out)) out.metadata = null;
  return out as unknown as GenerationRecord;
}
