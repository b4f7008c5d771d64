import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { CliError } from './client';

export interface PromptItem {
  topic: string;
  style?: string;
  size?: string;
  metadata?: Record<string, unknown>;
}

const bad = (file: string, line: number, reason: string) => new CliError(`${file}, line ${line}: ${reason}`);

/** Items of a prompts file: `.csv` (header topic,style,size), `.jsonl` (one item per line) or `.txt` (one topic per line). */
export function parsePrompts(file: string, text: string): PromptItem[] {
  const ext = path.extname(file).toLowerCase();
  const items: PromptItem[] = [];
  if (ext === '.csv') {
    let rows: { record: Record<string, string>; info: { lines: number } }[];
    try {
      rows = parse(text, { columns: true, skip_empty_lines: true, bom: true, info: true }) as typeof rows;
    } catch (err) {
      const e = err as { lines?: number; message: string };
      throw bad(file, e.lines ?? 1, e.message);
    }
    const header = rows[0] ? Object.keys(rows[0].record) : [];
    const unknown = header.filter((c) => !['topic', 'style', 'size'].includes(c));
    if (rows.length && (unknown.length || !header.includes('topic'))) throw bad(file, 1, 'the header must be topic,style,size');
    for (const { record, info } of rows) {
      if (!record.topic?.trim()) throw bad(file, info.lines, 'the topic is empty');
      items.push({ topic: record.topic, ...(record.style ? { style: record.style } : {}), ...(record.size ? { size: record.size } : {}) });
    }
  } else if (ext === '.jsonl' || ext === '.ndjson') {
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (!line) return;
      let item: unknown;
      try {
        item = JSON.parse(line);
      } catch {
        throw bad(file, i + 1, 'not valid JSON');
      }
      if (!item || typeof item !== 'object' || typeof (item as PromptItem).topic !== 'string' || !(item as PromptItem).topic.trim()) throw bad(file, i + 1, 'needs a non-empty "topic"');
      items.push(item as PromptItem);
    });
  } else if (ext === '.txt') {
    text.split('\n').forEach((raw) => {
      if (raw.trim()) items.push({ topic: raw.trim() });
    });
  } else {
    throw new CliError(`${file}: use a .csv, .jsonl or .txt file`);
  }
  if (items.length === 0) throw new CliError(`${file}: no prompts in it`);
  return items;
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
