import type { Request, Response } from 'express';
import { isTerminal, presentGeneration, type GenerationRecord } from '@imagegen/shared';
import type { ApiContext } from '../context';

/** Server-sent events of a generation's state changes, ending when it does. */
export async function streamGenerationEvents(ctx: ApiContext, initial: GenerationRecord, req: Request, res: Response): Promise<void> {
  res.status(200).set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
  let seq = 0;
  const send = (type: string, record: GenerationRecord) => {
    res.write(`id: ${++seq}\nevent: ${type}\ndata: ${JSON.stringify(presentGeneration(record, ctx.config.PUBLIC_BASE_URL))}\n\n`);
  };
  let done = false;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let chain = Promise.resolve();
  const unsubscribe = await ctx.hub.subscribe(ctx.keys.generationChannel(initial.id), (message) => {
    const { type } = JSON.parse(message) as { type: string };
    // re-read in order so each event carries the record as it is after that change
    chain = chain.then(async () => {
      if (done) return;
      const record = await ctx.store.get(initial.id);
      if (!record) return finish();
      send(type, record);
      if (isTerminal(record.status)) finish();
    }).catch(() => finish());
  });
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  req.on('close', finish);
  try {
    const current = (await ctx.store.get(initial.id)) ?? initial;
    send('generation.snapshot', current);
    if (!isTerminal(current.status)) await finished;
  } finally {
    done = true;
    clearInterval(heartbeat);
    await unsubscribe();
    res.end();
  }
}
