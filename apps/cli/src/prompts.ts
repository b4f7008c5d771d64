import { isUtf8 } from 'node:buffer';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { MAX_BATCH_ITEMS } from '@imagegen/shared/schemas';
import { CliError } from './client';
import { listedUnder } from './listing';

export interface PromptItem {
  topic: string;
  style?: string;
  size?: string;
  metadata?: Record<string, unknown>;
}

/** A prompts file's items, and the line of the file each came from (what a problem with it names). */
export interface Prompts {
  items: PromptItem[];
  lines: number[];
}

/**
 * Items of a prompts file: `.csv` (header topic,style,size), `.jsonl` (one item per line) or `.txt`
 * (one topic per line). Every bad line is reported in one go, so a file is fixed in one pass.
 */
export function parsePrompts(file: string, text: string): Prompts {
  const ext = path.extname(file).toLowerCase();
  const items: PromptItem[] = [];
  const lines: number[] = [];
  const take = (item: PromptItem, line: number) => {
    items.push(item);
    lines.push(line);
  };
  const problems: { line: number; reason: string }[] = [];
  const bad = (line: number, reason: string) => problems.push({ line, reason });
  if (ext === '.csv') {
    let rows: { record: Record<string, string>; info: { lines: number }; raw: string }[];
    try {
      rows = parse(text, {
        // as the API reads a header: spreadsheets write `Topic, Style, Size`
        columns: (names: string[]) => names.map((n) => n.trim().toLowerCase()),
        // as the API reads CSV: a short row leaves its last columns empty (their defaults); a long one is an error
        relax_column_count_less: true,
        // as the API reads CSV: any of the three line endings on any line (csv-parse would take the first one it meets for the only one)
        record_delimiter: ['\r\n', '\n', '\r'],
        skip_empty_lines: true,
        bom: true,
        info: true,
        raw: true,
        skip_records_with_error: true,
        on_skip: (err) => void (err && bad(Number(err.lines), err.message)),
      }) as typeof rows;
    } catch (err) {
      const e = err as { lines?: number; message: string };
      rows = [];
      bad(e.lines ?? 1, e.message);
    }
    const header = rows[0] ? Object.keys(rows[0].record) : [];
    const unknown = header.filter((c) => !['topic', 'style', 'size'].includes(c));
    if (rows.length && (unknown.length || !header.includes('topic'))) throw badLines(file, [{ line: 1, reason: 'the header must be topic,style,size' }]);
    for (const { record, info, raw } of rows) {
      // the line a record starts on: `lines` is where it ends, and a quoted field may hold line breaks
      const line = info.lines - (raw.replace(/^[\r\n]+/, '').replace(/\r?\n$|\r$/, '').match(/\n/g)?.length ?? 0);
      if (!record.topic?.trim()) bad(line, 'the topic is empty');
      else take({ topic: record.topic, ...(record.style ? { style: record.style } : {}), ...(record.size ? { size: record.size } : {}) }, line);
    }
  } else if (ext === '.jsonl' || ext === '.ndjson') {
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (!line) return;
      let item: unknown;
      try {
        item = JSON.parse(line);
      } catch {
        return bad(i + 1, 'not valid JSON');
      }
      if (!item || typeof item !== 'object' || typeof (item as PromptItem).topic !== 'string' || !(item as PromptItem).topic.trim()) return bad(i + 1, 'needs a non-empty "topic"');
      take(item as PromptItem, i + 1);
    });
  } else if (ext === '.txt') {
    text.split('\n').forEach((raw, i) => {
      if (raw.trim()) take({ topic: raw.trim() }, i + 1);
    });
  } else {
    throw new CliError(`${file}: use a .csv, .jsonl or .txt file`);
  }
  if (problems.length) throw badLines(file, problems.sort((a, b) => a.line - b.line));
  if (items.length === 0) throw new CliError(`${file}: no prompts in it`);
  // told before the file is sent (the API would refuse it only once it has all of it)
  if (items.length > MAX_BATCH_ITEMS) throw new CliError(`${file} has ${items.length.toLocaleString('en-US')} prompts; a batch holds at most ${MAX_BATCH_ITEMS.toLocaleString('en-US')}: split it into several files`);
  return { items, lines };
}

/** One bad line as a sentence naming it; more as a list under the file's name. */
function badLines(file: string, problems: { line: number; reason: string }[]): CliError {
  if (problems.length === 1) return new CliError(`${file}, line ${problems[0]!.line}: ${problems[0]!.reason}`);
  return new CliError(listedUnder(`${file} has ${problems.length} bad lines:`, problems.map((p) => `line ${p.line}: ${p.reason}`)));
}

export async function readPrompts(file: string): Promise<Prompts> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new CliError(`Cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parsePrompts(file, utf8Of(file, bytes));
}

/**
 * The file's text; one that is not UTF-8 is refused, naming its first such line, as the API
 * refuses such a body: read anyway, its topics would be sent (and paid for) with U+FFFD in them.
 */
function utf8Of(file: string, bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    let line = 1;
    for (let start = 0; start < bytes.length; line++) {
      const end = bytes.indexOf(0x0a, start);
      const piece = bytes.subarray(start, end < 0 ? bytes.length : end);
      if (!isUtf8(piece)) break;
      if (end < 0) break;
      start = end + 1;
    }
    throw new CliError(`${file}, line ${line}: not UTF-8 text (save the file as UTF-8)`);
  }
}

