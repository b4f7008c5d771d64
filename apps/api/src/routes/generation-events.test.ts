import { generationEventFrames } from './generation-events';

it('numbers frames on from the id the client saw, tells a repeat once, and nothing after the end', () => {
  const frameOf = generationEventFrames(7);
  const sent = [
    frameOf('generation.snapshot', 'queued', '{"a":1}'),
    // a re-read that finds nothing new
    frameOf('generation.snapshot', 'queued', '{"a":1}'),
    // the change's own event after a snapshot that showed its state
    frameOf('generation.started', 'active', '{"a":2}'),
    frameOf('generation.snapshot', 'active', '{"a":2}'),
    frameOf('generation.completed', 'completed', '{"a":3}'),
    // re-reads queued before the end was told (before: the end was told again)
    frameOf('generation.completed', 'completed', '{"a":3}'),
    frameOf('generation.snapshot', 'completed', '{"a":3}'),
  ];
  expect(sent.map((f) => f && /^id: (\S+)\nevent: (\S+)/.exec(f)!.slice(1).join(' '))).toEqual([
    '8 generation.snapshot',
    null,
    '9 generation.started',
    '10 generation.snapshot',
    'end generation.completed',
    null,
    null,
  ]);
});
