import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { parse as parseCsv } from 'csv-parse';
import type { Request } from 'express';
import { batchDefaultsSchema, batchEnvelopeSchema, batchItemSchema, INPUT_PARSE, MAX_BATCH_ITEMS, plural, toFieldErrors, type BatchDefaults, type BatchEnvelope, type BatchItem, type FieldError } from '@imagegen/shared';
import { invalid } from '../http/problem';

/** A batch as submitted, every item valid (the defaults applied to them). */
export type BatchSubmission = Omit<BatchEnvelope, 'items' | 'defaults'> & { items: BatchItem[] };

/** Items validated between two yields to the event loop: other requests keep being answered. */
const VALIDATE_CHUNK = 250;
const CSV_COLUMNS = ['topic', 'style', 'size'] as const;

/**
 * Validates every item (defaults first), naming each bad one by its index; one bad item
 * rejects the whole batch.
 */
export async function validateItems(raw: unknown[], defaults: BatchDefaults = {}, preErrors: FieldError[] = [], batchErrors: FieldError[] = []): Promise<BatchItem[]> {
  if (raw.length === 0) throw invalid('A batch needs at least one item', [{ path: 'items', message: 'must hold at least one item' }]);
  if (raw.length > MAX_BATCH_ITEMS) throw invalid(`A batch holds at most ${MAX_BATCH_ITEMS} items`, [{ path: 'items', message: `must hold at most ${MAX_BATCH_ITEMS} items` }]);
  const errors: FieldError[] = [...preErrors];
  const items: BatchItem[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (i > 0 && i % VALIDATE_CHUNK === 0) await yieldToLoop();
    let item = raw[i];
    if (item === undefined) continue; // a line already reported as unreadable
    if (item && typeof item === 'object' && !Array.isArray(item)) {
      const o = item as Record<string, unknown>;
      item = { ...o, ...(o.style === undefined && defaults.style ? { style: defaults.style } : {}), ...(o.size === undefined && defaults.size ? { size: defaults.size } : {}) };
    }
    const parsed = batchItemSchema.safeParse(item, INPUT_PARSE);
    if (parsed.success) items.push(parsed.data);
    else errors.push(...toFieldErrors(parsed.error, [i]).map((e) => (e.path === '(body)' ? { ...e, path: String(i) } : e)));
  }
  if (errors.length) {
    // in item order, unreadable lines among them (a stable sort keeps each item's own order)
    const indexOf = (e: FieldError) => Number(e.path.split('.')[0]);
    errors.sort((a, b) => indexOf(a) - indexOf(b));
    const bad = new Set(errors.map((e) => e.path.split('.')[0])).size;
    const items = `${plural(bad, 'item')} of ${raw.length} ${bad === 1 ? 'is' : 'are'} invalid`;
    throw invalid(`${batchErrors.length ? `The batch is invalid and ${items}` : items}; nothing was enqueued`, [...batchErrors, ...errors]);
  }
  return items;
}

/** `POST /v1/batches` with a JSON body (already parsed, within the batch body limit, by readJsonBody). */
export async function fromJson(body: unknown): Promise<BatchSubmission> {
  if (body === undefined) throw invalid('A body is required', [{ path: '(body)', message: 'is required' }]);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('The body must be a JSON object', [{ path: '(body)', message: 'must be a JSON object' }]);
  const envelope = batchEnvelopeSchema.safeParse(body, INPUT_PARSE);
  if (!envelope.success) {
    // the items are still checked, so one answer names every problem, not the first kind of it
    const top = toFieldErrors(envelope.error);
    const { items, defaults } = body as { items?: unknown; defaults?: unknown };
    const usableDefaults = batchDefaultsSchema.safeParse(defaults ?? {}, INPUT_PARSE);
    if (Array.isArray(items) && items.length >= 1 && items.length <= MAX_BATCH_ITEMS) await validateItems(items, usableDefaults.success ? usableDefaults.data : {}, [], top);
    throw invalid('The batch is invalid', top);
  }
  const { items, defaults, webhook, metadata } = envelope.data;
  return { items: await validateItems(items, defaults), ...(webhook ? { webhook } : {}), ...(metadata ? { metadata } : {}) };
}

/** One item per line; blank lines are skipped. A line that is not JSON is named by its index and line. */
export async function fromNdjson(text: string): Promise<BatchSubmission> {
  const raw: unknown[] = [];
  const errors: FieldError[] = [];
  let line = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line++;
    const content = text.slice(start, end).trim();
    start = end + 1;
    if (!content) continue;
    if (line % VALIDATE_CHUNK === 0) await yieldToLoop();
    try {
      raw.push(JSON.parse(content));
    } catch {
      errors.push({ path: String(raw.length), message: `line ${line} is not valid JSON` });
      raw.push(undefined);
    }
  }
  return { items: await validateItems(raw, {}, errors) };
}

/**
 * Header `topic,style,size` (any order; style and size may be left out, or empty in a row); quoted
 * fields may hold commas, quotes and newlines. A row with more fields than the header is an item
 * error like any other, so one answer names every bad row; a short row leaves its last columns empty.
 */
export async function fromCsv(text: string): Promise<BatchSubmission> {
  // any of the three line endings on any line (a spreadsheet's header, rows pasted in from elsewhere): a parser that took its
  // ending from the header would read LF rows after a CRLF header as one multi-line topic
  const parser = parseCsv({ relax_column_count: true, skip_empty_lines: true, trim: false, bom: true, info: true, max_record_size: 64 * 1024, record_delimiter: ['\r\n', '\n', '\r'] });
  const raw: unknown[] = [];
  const errors: FieldError[] = [];
  let header: string[] | undefined;
  parser.end(text);
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      if (!header) {
        // spreadsheets write `Topic, Style, Size`
        header = record.map((c) => c.trim().toLowerCase());
        const known = (c: string) => (CSV_COLUMNS as readonly string[]).includes(c);
        if (!header.every(known) || !header.includes('topic') || new Set(header).size !== header.length) {
          throw invalid(`The CSV header must be ${CSV_COLUMNS.join(',')}`, [{ path: '(header)', message: `must name the columns ${CSV_COLUMNS.join(', ')} (topic required, each once)` }]);
        }
        continue;
      }
      if (record.length > header.length) {
        errors.push({ path: String(raw.length), message: `line ${info.lines} has ${record.length} fields; the header names ${header.length}` });
        raw.push(undefined);
      } else {
        const item: Record<string, string> = {};
        header.forEach((column, i) => {
          const value = record[i] ?? '';
          if (value !== '' || column === 'topic') item[column] = value;
        });
        raw.push(item);
      }
      if (raw.length > MAX_BATCH_ITEMS) break;
    }
  } catch (err) {
    if ((err as { status?: number }).status) throw err;
    const e = err as { message: string; lines?: number };
    throw invalid(`The CSV is malformed${e.lines ? ` at line ${e.lines}` : ''}`, [{ path: '(body)', message: e.message }]);
  }
  return { items: await validateItems(raw, {}, errors) };
}

/** Which of the three forms the request declares. */
export function batchFormat(req: Request): 'json' | 'ndjson' | 'csv' | null {
  const type = req.is(['application/json', 'application/x-ndjson', 'text/csv']);
  if (type === 'application/json') return 'json';
  if (type === 'application/x-ndjson') return 'ndjson';
  if (type === 'text/csv') return 'csv';
  return null;
}
