import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parsePrompts, readPrompts } from './prompts';

describe('parsePrompts', () => {
  it('reads CSV with quoted commas, quotes and newlines', () => {
    const { items, lines } = parsePrompts('p.csv', 'topic,style,size\n\n"a, b ""c""\nd",VECTOR_IMAGE,\nplain,,SQUARE\n');
    expect(items).toEqual([{ topic: 'a, b "c"\nd', style: 'VECTOR_IMAGE' }, { topic: 'plain', size: 'SQUARE' }]);
    // each item's line: where its record starts
    expect(lines).toEqual([3, 5]);
  });
  it('names the line and the reason of a bad JSONL line', () => {
    expect(() => parsePrompts('p.jsonl', '{"topic":"a"}\n\n{oops\n')).toThrow('p.jsonl, line 3: not valid JSON');
    expect(() => parsePrompts('p.jsonl', '{"topic":""}\n')).toThrow('line 1: needs a non-empty "topic"');
  });
  it('reads one topic per line of text and refuses other files', () => {
    expect(parsePrompts('p.txt', 'one\n\ntwo\n')).toEqual({ items: [{ topic: 'one' }, { topic: 'two' }], lines: [1, 3] });
    expect(parsePrompts('p.jsonl', '\r\n{"topic":"a"}\r\n\n{"topic":"b"}').lines).toEqual([2, 4]);
    expect(() => parsePrompts('p.docx', 'x')).toThrow('use a .csv, .jsonl or .txt file');
  });
});

describe('parsePrompts with many bad lines', () => {
  it('names every bad JSONL line in one go', () => {
    const text = '{"topic":"a"}\n{oops\n{"topic":""}\n{"topic":"b"}\nnope\n';
    expect(() => parsePrompts('p.jsonl', text)).toThrow('p.jsonl has 3 bad lines:\n  line 2: not valid JSON\n  line 3: needs a non-empty "topic"\n  line 5: not valid JSON');
  });
  it('names every bad CSV row it can read past', () => {
    const text = 'topic,style,size\nok,,\n,,\nfine,,\na,b,c,d\nlast,,\n';
    expect(() => parsePrompts('p.csv', text)).toThrow(/^p\.csv has 2 bad lines:\n {2}line 3: the topic is empty\n {2}line 5: .*columns length is 3, got 4/);
  });
  it('lists the first hundred and counts the rest', () => {
    const text = Array.from({ length: 130 }, (_, i) => `{bad ${i}`).join('\n');
    const message = (() => {
      try {
        parsePrompts('p.jsonl', text);
      } catch (err) {
        return (err as Error).message;
      }
    })()!;
    const lines = message.split('\n');
    expect(lines[0]).toBe('p.jsonl has 130 bad lines:');
    expect(lines).toHaveLength(1 + 100 + 1);
    expect(lines[100]).toBe('  line 100: not valid JSON');
    expect(lines[101]).toBe('  and 30 more');
  });
});

describe('parsePrompts with short CSV rows', () => {
  it('reads a short row as the API does: its last columns empty, so their defaults', () => {
    // before: "columns length is 3, got 1" for a file the API itself accepts
    expect(parsePrompts('p.csv', 'topic,style,size\na cat\na dog,VECTOR_IMAGE\n').items).toEqual([{ topic: 'a cat' }, { topic: 'a dog', style: 'VECTOR_IMAGE' }]);
  });
});

describe('parsePrompts past the batch limit', () => {
  it('refuses more prompts than a batch holds before anything is sent', () => {
    const text = Array.from({ length: 50_001 }, (_, i) => `topic ${i}`).join('\n');
    expect(() => parsePrompts('big.txt', text)).toThrow('big.txt has 50,001 prompts; a batch holds at most 50,000: split it into several files');
    expect(parsePrompts('fits.txt', Array.from({ length: 50_000 }, (_, i) => `topic ${i}`).join('\n')).items).toHaveLength(50_000);
  });
});

describe('prompts files as the API reads them', () => {
  it('reads CSV lines ending in CRLF, LF or CR, mixed in one file, as the API does', () => {
    // before: "Invalid Record Length: columns length is 2, got 4 on line 4" (the first ending, CRLF, taken for the only one)
    const { items, lines } = parsePrompts('mixed.csv', 'topic,size\r\nfirst,SQUARE\nsecond,PORTRAIT\rthird,SQUARE\n');
    expect(items).toEqual([
      { topic: 'first', size: 'SQUARE' },
      { topic: 'second', size: 'PORTRAIT' },
      { topic: 'third', size: 'SQUARE' },
    ]);
    expect(lines).toEqual([2, 3, 4]);
    // a bad row is named by its line whatever the endings before it
    expect(() => parsePrompts('mixed.csv', 'topic,size\rfirst,SQUARE\r\n,PORTRAIT\n')).toThrow(/line 3: the topic is empty/);
  });

  it('takes a CSV header as the API does: any case, spaces around the names', () => {
    // before: "the header must be topic,style,size" for a file the API itself accepts
    expect(parsePrompts('p.csv', 'Topic, Style, Size\na cat,3D,SQUARE\n').items).toEqual([{ topic: 'a cat', style: '3D', size: 'SQUARE' }]);
  });

  it('refuses a file that is not UTF-8, naming its first such line, rather than send U+FFFD in its topics', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-prompts-'));
    try {
      for (const [name, bytes, line] of [
        ['latin1.csv', Buffer.from('topic\ncaf\xe9\n', 'latin1'), 2],
        ['latin1.txt', Buffer.from('fine\nstill fine\ncaf\xe9 au lait\n', 'latin1'), 3],
      ] as const) {
        await writeFile(path.join(dir, name), bytes);
        // before: read with U+FFFD in place of é, and sent
        await expect(readPrompts(path.join(dir, name))).rejects.toThrow(`${path.join(dir, name)}, line ${line}: not UTF-8 text (save the file as UTF-8)`);
      }
      await writeFile(path.join(dir, 'utf8.txt'), 'café au lait\n');
      expect((await readPrompts(path.join(dir, 'utf8.txt'))).items).toEqual([{ topic: 'café au lait' }]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
