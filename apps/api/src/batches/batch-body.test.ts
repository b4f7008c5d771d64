import { HttpProblem } from '../http/problem';
import { fromCsv, fromJson, fromNdjson } from './batch-body';

/** The problem a body is refused with. */
async function refusal(work: Promise<unknown>): Promise<HttpProblem> {
  const outcome = await work.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a refusal, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(HttpProblem);
  return outcome.error as HttpProblem;
}

const paths = (p: HttpProblem) => (p.errors ?? []).map((e) => e.path);

describe('CSV batches', () => {
  it('reads columns in any order, a quoted field with commas and newlines, and a short row with its last columns empty', async () => {
    const { items } = await fromCsv('size,topic,style\nSQUARE,"a cat, ""asleep""\non a mat",PHOTOGRAPHIC\nLANDSCAPE,a dog\n');
    expect(items).toEqual([
      expect.objectContaining({ topic: 'a cat, "asleep"\non a mat', style: 'PHOTOGRAPHIC', size: 'SQUARE' }),
      expect.objectContaining({ topic: 'a dog', size: 'LANDSCAPE' }),
    ]);
  });

  it('reads each line as a row whatever its ending, CRLF, LF or CR, mixed in one file', async () => {
    const topics = async (csv: string) => (await fromCsv(csv)).items.map((i) => i.topic);
    // a CRLF header and LF rows: three rows, not one topic spanning them
    expect(await topics('topic\r\nalpha\nbeta\ngamma\n')).toEqual(['alpha', 'beta', 'gamma']);
    // an LF header and CRLF rows: no CR left at the end of a topic
    expect(await topics('topic\nalpha\r\nbeta\r\n')).toEqual(['alpha', 'beta']);
    expect(await topics('topic\ralpha\rbeta')).toEqual(['alpha', 'beta']);
    const { items } = await fromCsv('topic,style,size\nx,,SQUARE\r\n"two\r\nlines",VECTOR_IMAGE,PORTRAIT\n');
    expect(items).toEqual([expect.objectContaining({ topic: 'x', size: 'SQUARE' }), expect.objectContaining({ topic: 'two\r\nlines', style: 'VECTOR_IMAGE', size: 'PORTRAIT' })]);
  });

  it('reads a header as spreadsheets write it: any case, spaces around the names', async () => {
    const { items } = await fromCsv('Topic, Style ,SIZE\nlighthouse,VECTOR_IMAGE,SQUARE\n');
    expect(items).toEqual([expect.objectContaining({ topic: 'lighthouse', style: 'VECTOR_IMAGE', size: 'SQUARE' })]);
  });

  it('names a row with too many fields beside every other bad row, by index and line', async () => {
    const csv = ['topic,style,size', 'fine,PHOTOGRAPHIC,SQUARE', 'extra,PHOTOGRAPHIC,SQUARE,oops', 'bad style,NOPE,SQUARE', '"two\nlines",PHOTOGRAPHIC,SQUARE,x', 'fine again,PHOTOGRAPHIC,SQUARE'].join('\n');
    const problem = await refusal(fromCsv(csv));
    expect(problem.status).toBe(400);
    expect(paths(problem)).toEqual(['1', '2.style', '3']);
    expect(problem.errors?.[0]?.message).toBe('line 3 has 4 fields; the header names 3');
    expect(problem.errors?.[2]?.message).toBe('line 6 has 4 fields; the header names 3');
    expect(problem.detail).toBe('3 items of 5 are invalid; nothing was enqueued');
  });

  it('refuses an unknown, missing or repeated header column', async () => {
    for (const header of ['topic,style,colour', 'style,size', 'topic,topic']) {
      const problem = await refusal(fromCsv(`${header}\na,b\n`));
      expect(paths(problem)).toEqual(['(header)']);
    }
  });

  it('refuses a broken quote as malformed, with its line', async () => {
    const problem = await refusal(fromCsv('topic,style,size\n"never closed,PHOTOGRAPHIC,SQUARE\n'));
    expect(problem.detail).toMatch(/^The CSV is malformed/);
    expect(paths(problem)).toEqual(['(body)']);
  });
});

describe('JSON batches', () => {
  it('names a bad top-level field and every bad item in one answer', async () => {
    const problem = await refusal(
      fromJson({ items: [{ topic: 'ok', style: 'PHOTOGRAPHIC', size: 'SQUARE' }, { topic: 'x', style: 'NOPE', size: 'SQUARE' }, { topic: '' }], webhook: { url: 'not a url' }, colour: 'red' }),
    );
    const found = paths(problem);
    expect(found.slice(-2).map((p) => p.split('.')[0])).toEqual(['1', '2']);
    expect(found.some((p) => p.startsWith('webhook'))).toBe(true);
    expect(found.length).toBeGreaterThanOrEqual(4);
    expect(problem.detail).toBe('The batch is invalid and 2 items of 3 are invalid; nothing was enqueued');
  });

  it('applies valid defaults while checking items beside a bad top-level field', async () => {
    const problem = await refusal(fromJson({ items: [{ topic: 'a' }, { topic: 'b', style: 'NOPE' }], defaults: { style: 'PHOTOGRAPHIC', size: 'SQUARE' }, metadata: 'not an object' }));
    expect(paths(problem).map((p) => p.split('.')[0])).toEqual(['metadata', '1']);
  });

  it('with only a bad top-level field, says the batch is invalid', async () => {
    const problem = await refusal(fromJson({ items: [{ topic: 'a', style: 'PHOTOGRAPHIC', size: 'SQUARE' }], metadata: 'not an object' }));
    expect(problem.detail).toBe('The batch is invalid');
    expect(paths(problem)).toEqual(['metadata']);
  });

  it('accepts a valid batch', async () => {
    const { items, metadata } = await fromJson({ items: [{ topic: 'a' }], defaults: { style: 'PHOTOGRAPHIC', size: 'SQUARE' }, metadata: { run: 1 } });
    expect(items).toEqual([expect.objectContaining({ topic: 'a', style: 'PHOTOGRAPHIC', size: 'SQUARE' })]);
    expect(metadata).toEqual({ run: 1 });
  });
});

describe('NDJSON batches', () => {
  it('names an unreadable line beside the bad items, in item order', async () => {
    const problem = await refusal(fromNdjson('{"topic":"a","style":"PHOTOGRAPHIC","size":"SQUARE"}\n\n{"topic":"b","style":"NOPE","size":"SQUARE"}\n{oops\n'));
    expect(paths(problem)).toEqual(['1.style', '2']);
    expect(problem.errors?.[1]?.message).toBe('line 4 is not valid JSON');
  });
});
