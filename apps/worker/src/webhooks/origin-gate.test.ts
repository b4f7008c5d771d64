import { OriginGate } from './origin-gate';

it('lets `limit` in per origin, the rest in order as places free; a dropped wait never starts', async () => {
  const gate = new OriginGate(2);
  const started: string[] = [];
  const start = (name: string) => () => started.push(name);
  const waits = { c: start('c'), d: start('d'), e: start('e') };
  gate.enter('a', start('a1'));
  gate.enter('a', start('a2'));
  gate.enter('a', waits.c);
  gate.enter('a', waits.d);
  gate.enter('a', waits.e);
  // another origin has its own places
  gate.enter('b', start('b1'));
  expect(started).toEqual(['a1', 'a2', 'b1']);
  expect(gate.drop('a', waits.d)).toBe(true);
  gate.leave('a');
  await Promise.resolve();
  expect(started).toEqual(['a1', 'a2', 'b1', 'c']);
  // started already: nothing to drop
  expect(gate.drop('a', waits.c)).toBe(false);
  gate.leave('a');
  gate.leave('a');
  await Promise.resolve();
  expect(started).toEqual(['a1', 'a2', 'b1', 'c', 'e']);
  gate.leave('a');
  // all places given back: the next one starts at once
  gate.enter('a', start('f'));
  expect(started.at(-1)).toBe('f');
});
