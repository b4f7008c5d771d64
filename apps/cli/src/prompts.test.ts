import { parsePrompts } from './prompts';

describe('parsePrompts', () => {
  it('reads CSV with quoted commas, quotes and newlines', () => {
    const items = parsePrompts('p.csv', 'topic,style,size\n"a, b ""c""\nd",VECTOR_IMAGE,\nplain,,SQUARE\n');
    expect(items).toEqual([{ topic: 'a, b "c"\nd', style: 'VECTOR_IMAGE' }, { topic: 'plain', size: 'SQUARE' }]);
  });
  it('names the line and the reason of a bad JSONL line', () => {
    expect(() => parsePrompts('p.jsonl', '{"topic":"a"}\n\n{oops\n')).toThrow('p.jsonl, line 3: not valid JSON');
    expect(() => parsePrompts('p.jsonl', '{"topic":""}\n')).toThrow('line 1: needs a non-empty "topic"');
  });
  it('reads one topic per line of text and refuses other files', () => {
    expect(parsePrompts('p.txt', 'one\n\ntwo\n')).toEqual([{ topic: 'one' }, { topic: 'two' }]);
    expect(() => parsePrompts('p.docx', 'x')).toThrow('use a .csv, .jsonl or .txt file');
  });
});
