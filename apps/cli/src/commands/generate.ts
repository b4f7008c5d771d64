import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Command } from 'commander';
import { publicGenerationSchema } from '@imagegen/shared/schemas';
import { clientFrom, CliError } from '../client';
import { discardPartialDownloads, download, extensionOf } from '../download';
import { onStop, stopExitCode } from '../stop-signals';
import { retryableButQuota, retrying } from '../retry';
import { formatNote, outputFile, resolveOutput } from './generate-output';

/** A failure once the generation exists names it, so that the user can still look it up. */
function namingGeneration(err: unknown, id: string): CliError {
  const message = (err as Error)?.message ?? String(err);
  if (message.includes(id)) return err instanceof CliError ? err : new CliError(message);
  return new CliError(`${message} (generation ${id}; see: imagegen status ${id})`, err instanceof CliError ? err.exitCode : 1);
}

export function register(program: Command): void {
  program
    .command('generate')
    .description('generate one image, wait for it and save it')
    .argument('<topic>', 'what the image shows')
    .option('--style <style>', 'PHOTOGRAPHIC | VECTOR_IMAGE | ILLUSTRATION | 3D')
    .option('--size <size>', 'LANDSCAPE | PORTRAIT | SQUARE')
    .option('--out <file>', 'where to save the original (a folder: <id>.<ext> in it)')
    .option('--thumbnails', 'save the thumbnails next to it')
    .action(async (topic: string, opts: { style?: string; size?: string; out?: string; thumbnails?: boolean }) => {
      const client = clientFrom(program.opts());
      const output = await resolveOutput(opts.out);
      const body = { topic, ...(opts.style ? { style: opts.style } : {}), ...(opts.size ? { size: opts.size } : {}) };
      // one key for every try: a request whose answer was lost is answered again, not made twice.
      // Answered at once (no Prefer: wait), so the id is known before the wait: a Ctrl-C during it names the generation
      const headers = { 'Content-Type': 'application/json', 'Idempotency-Key': `cli-${randomUUID()}` };
      let g = await retrying(() => client.json('/v1/generations', publicGenerationSchema, { method: 'POST', headers, body: JSON.stringify(body) }), undefined, undefined, retryableButQuota);
      const { id } = g;
      onStop(() => {
        discardPartialDownloads();
        console.error(`generation ${id} was not saved; see: imagegen status ${id}`);
        process.exit(stopExitCode());
      });
      try {
        // looked at often at first (most generations end in seconds), then once a second
        for (let pause = 200; g.status === 'queued' || g.status === 'active'; pause = Math.min(1000, pause * 1.5)) {
          await new Promise((r) => setTimeout(r, pause));
          g = await retrying(() => client.json(`/v1/generations/${id}`, publicGenerationSchema));
        }
        if (g.status !== 'completed' || !g.result) throw new CliError(`Generation ${id} ${g.status}${g.error ? `: ${g.error.message}` : ''}`);
        const { url } = g.result.image;
        const file = outputFile(output, id, url);
        await retrying(() => download(url, file));
        console.log(file);
        const note = formatNote(output, url);
        if (note) console.error(note);
        if (opts.thumbnails) {
          const stem = file.slice(0, file.length - path.extname(file).length);
          for (const t of g.result.thumbnails) {
            const thumb = `${stem}-${t.size}.${extensionOf(t.url)}`;
            await retrying(() => download(t.url, thumb));
            console.log(thumb);
          }
        }
      } catch (err) {
        throw namingGeneration(err, id);
      }
    });
}
