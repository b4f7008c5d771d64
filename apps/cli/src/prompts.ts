import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { MAX_BATCH_ITEMS } from '@imagegen/shared/schemas';
import { CliError } from './client';
import { capped } from './listing';

export interface PromptItem {
  topic: string;
  style?: string;
  size?: string;
  metadata?: Record<string, unknown>;
}

/**
 * Items of a prompts file: `.csv` (header topic,style,size), `.jsonl` (one item per line) or `.txt`
 * (one topic per line). Every bad line is reported in one go, so a file is fixed in one pass.
 */
export function parsePrompts(file: string, text: string): PromptItem[] {
  const ext = path.extname(file).toLowerCase();
  const items: PromptItem[] = [];
  const problems: { line: number; reason: string }[] = [];
  const bad = (line: number, reason: string) => problems.push({ line, reason });
  if (ext === '.csv') {
    let rows: { record: Record<string, string>; info: { lines: number } }[];
    try {
      rows = parse(text, {
        columns: true,
        // as the API reads CSV: a short row leaves its last columns empty (their defaults); a long one is an error
        relax_column_count_less: true,
        skip_empty_lines: true,
        bom: true,
        info: true,
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
    for (const { record, info } of rows) {
      if (!record.topic?.trim()) bad(info.lines, 'the topic is empty');
      else items.push({ topic: record.topic, ...(record.style ? { style: record.style } : {}), ...(record.size ? { size: record.size } : {}) });
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
      items.push(item as PromptItem);
    });
  } else if (ext === '.txt') {
    text.split('\n').forEach((raw) => {
      if (raw.trim()) items.push({ topic: raw.trim() });
    });
  } else {
    throw new CliError(`${file}: use a .csv, .jsonl or .txt file`);
  }
  if (problems.length) throw badLines(file, problems.sort((a, b) => a.line - b.line));
  if (items.length === 0) throw new CliError(`${file}: no prompts in it`);
  // told before the file is sent (the API would refuse it only once it has all of it)
  if (items.length > MAX_BATCH_ITEMS) throw new CliError(`${file} has ${items.length.toLocaleString('en-US')} prompts; a batch holds at most ${MAX_BATCH_ITEMS.toLocaleString('en-US')}: split it into several files`);
  return items;
}

/** One bad line as a sentence naming it; more as a list under the file's name. */
function badLines(file: string, problems: { line: number; reason: string }[]): CliError {
  if (problems.length === 1) return new CliError(`${file}, line ${problems[0]!.line}: ${problems[0]!.reason}`);
  const list = capped(problems.map((p) => `line ${p.line}: ${p.reason}`));
  return new CliError(`${file} has ${problems.length} bad lines:${list.map((l) => `\n  ${l}`).join('')}`);
}

export async function readPrompts(file: string): Promise<PromptItem[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`Cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parsePrompts(file, text);
}
