import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { batchResultLineSchema, finishedItemSchema, publicBatchSchema, publicGenerationSchema, type PublicBatch } from '@imagegen/shared/schemas';
import { answerAs, causeOf, clientFrom, CliError, type ApiClient } from '../client';
import { discardPartialDownloads, download, exists, extensionOf } from '../download';
import { ensureWritableFolder, removingMadeFoldersOnFailure } from '../outdir';
import { BatchProgress } from '../progress';
import { readPrompts } from '../prompts';
import { resumeCommand } from '../resume';
import { retrying } from '../retry';
import { onStop, stopExitCode } from '../stop-signals';
import { recordBatch, refuseFolderOfAnotherBatch, refuseFolderOfOtherBatch } from './batch-state';
import { submitBatch } from './batch-submit';

const DOWNLOADS_AT_ONCE = 8;

/** Downloads each completed item once, a few at a time. */
class Downloader {
  private readonly pending: { index: number; id: string; url?: string }[] = [];
  private readonly seen = new Set<string>();
  private running = 0;
  private idle: (() => void)[] = [];
  /** The first download that failed for good, and how many did. */
  failure?: Error;
  failures = 0;

  constructor(
    private readonly client: ApiClient,
    private readonly dir: string,
    private readonly width: number,
  ) {}

  add(index: number, id: string, url?: string): void {
    if (this.seen.has(id)) return;
    this.seen.add(id);
    this.pending.push({ index, id, ...(url ? { url } : {}) });
    this.pump();
  }

  private pump(): void {
    while (this.running < DOWNLOADS_AT_ONCE && this.pending.length) {
      const item = this.pending.shift()!;
      this.running++;
      void this.fetchOne(item)
        .catch((err: Error) => {
          this.failure ??= err;
          this.failures++;
        })
        .finally(() => {
          this.running--;
          this.pump();
          if (this.running === 0 && this.pending.length === 0) for (const r of this.idle.splice(0)) r();
        });
    }
  }

  /** `<index>-<id>` of every file the folder held when the run began: a resumed run asks nothing about those. */
  private saved?: Promise<Set<string>>;

  private savedBefore(stem: string): Promise<boolean> {
    this.saved ??= readdir(this.dir).then(
      (names) => new Set(names.map((n) => n.slice(0, n.lastIndexOf('.')))),
      () => new Set<string>(),
    );
    return this.saved.then((s) => s.has(stem));
  }

  private fetchOne(item: { index: number; id: string; url?: string }): Promise<void> {
    return retrying(async () => {
      // (a resumed run hears every item again: one saved before costs no request)
      if (await this.savedBefore(`${String(item.index).padStart(this.width, '0')}-${item.id}`)) return;
      const url = item.url ?? (await this.client.json(`/v1/generations/${item.id}`, publicGenerationSchema)).result?.image.url;
      if (!url) return;
      const file = path.join(this.dir, `${String(item.index).padStart(this.width, '0')}-${item.id}.${extensionOf(url)}`);
      if (!(await exists(file))) await download(url, file);
    });
  }

  drained(): Promise<void> {
    if (this.running === 0 && this.pending.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }
}

/** A connection that lasted this long was a good one, whether or not an item finished on it. */
const HEALTHY_STREAM_MS = 30_000;

/**
 * Follows the batch's event stream until the batch ends, calling back per finished item and per
 * count change. It starts from the batch's first finished item ('0-0'), so a resumed run hears
 * of what finished before it at once. A stream that breaks off (the API restarting, a connection
 * cut) is opened again with the last event id, so the items that finished meanwhile are still
 * told, once each. A streak of breaks is given up (see retrying) unless items come through or a
 * connection lasts.
 */
async function follow(client: ApiClient, id: string, onItem: (index: number, id: string, status: string) => void, onCounts: (b: PublicBatch) => void, signal: AbortSignal): Promise<void> {
  let lastEventId = '0-0';
  await retrying(async (succeeded) => {
    const res = await client.request(`/v1/batches/${id}/events`, { signal, headers: { 'Last-Event-ID': lastEventId } });
    if (!/^text\/event-stream/.test(res.headers.get('content-type') ?? '')) {
      await res.body?.cancel();
      throw new CliError(`${client.base} answered the events of batch ${id} with something else than an event stream; check IMAGEGEN_URL or --url`);
    }
    const opened = Date.now();
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (err) {
          if (signal.aborted) throw err;
          throw new CliError(`The event stream of batch ${id} broke off (${causeOf(err)})`, 1, true);
        }
        if (chunk.done) throw new CliError(`The event stream of batch ${id} ended before the batch did`, 1, true);
        if (Date.now() - opened >= HEALTHY_STREAM_MS) succeeded();
        buffer += decoder.decode(chunk.value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!event || !data) continue;
          const body: unknown = JSON.parse(data);
          const from = `the event stream of batch ${id}`;
          if (event === 'item') {
            const item = answerAs(finishedItemSchema, body, from);
            onItem(item.index, item.id, item.status);
            succeeded();
          } else onCounts(answerAs(publicBatchSchema, body, from));
          lastEventId = /^id: (.*)$/m.exec(block)?.[1] ?? lastEventId;
          if (event === 'batch.completed') return;
        }
      }
    } finally {
      reader.releaseLock();
      await res.body?.cancel().catch(() => undefined);
    }
  }, signal);
}

/** Cancels every item of the batch not finished yet; answers the batch as it then stands (a finished one as it is). */
async function cancel(client: ReturnType<typeof clientFrom>, id: string): Promise<PublicBatch> {
  const url = `/v1/batches/${encodeURIComponent(id)}`;
  try {
    const batch = await client.json(url, publicBatchSchema, { method: 'DELETE' });
    console.error(`batch ${batch.id} cancelled`);
    return batch;
  } catch (err) {
    // refused because every item had finished by then: nothing to cancel, carry on with the results
    const batch = await client.json(url, publicBatchSchema);
    if (batch.status !== 'completed') throw err;
    console.error(`batch ${batch.id} had already finished: nothing to cancel`);
    return batch;
  }
}

export function register(program: Command): void {
  program
    .command('batch')
    .description('submit a file of prompts, follow it and download every result into a folder')
    .argument('<file>', 'prompts: .csv (topic,style,size), .jsonl (one item per line) or .txt (one topic per line)')
    .requiredOption('--out <dir>', 'folder for the images and results.jsonl')
    .option('--resume <batchId>', 'continue a batch already submitted (nothing is submitted again)')
    .option('--cancel', 'cancel the batch: with --resume at once, else on Ctrl-C (instead of leaving it running)')
    .action(async (file: string, opts: { out: string; resume?: string; cancel?: boolean }) => {
      const client = clientFrom(program.opts());
      const dir = path.resolve(opts.out);
      let batch: PublicBatch;
      let interruptedWhileSubmitting = false;
      if (opts.resume) {
        const made = await ensureWritableFolder(dir, '--out');
        await refuseFolderOfOtherBatch(client, dir, opts.resume, opts.out);
        batch = await removingMadeFoldersOnFailure(dir, made, client.json(`/v1/batches/${encodeURIComponent(opts.resume)}`, publicBatchSchema));
        recordBatch(dir, batch.id, file);
        // what finished stays and is downloaded below; the rest ends as cancelled
        if (opts.cancel) batch = await cancel(client, batch.id);
      } else {
        const prompts = await readPrompts(file);
        await refuseFolderOfAnotherBatch(dir, file, opts.out);
        // a batch is paid for once submitted: one that could not be saved must not be sent
        const made = await ensureWritableFolder(dir, '--out');
        const submitted = await removingMadeFoldersOnFailure(dir, made, submitBatch(client, file, prompts));
        batch = submitted.batch;
        // shown before anything else can go wrong, so that every later stop can be resumed
        console.error(`batch ${batch.id} submitted (${batch.total} items); if stopped, continue with:\n  ${resumeCommand(file, opts.out, batch.id)}`);
        recordBatch(dir, batch.id, file);
        if (submitted.interrupted && !opts.cancel) process.exit(stopExitCode());
        interruptedWhileSubmitting = submitted.interrupted;
      }
      if (opts.resume) console.error(`batch ${batch.id}: ${batch.total} items`);

      const stop = new AbortController();
      let interrupted = false;
      const onInterrupt = () => {
        interrupted = true;
        stop.abort();
      };
      let stopListening = onStop(onInterrupt);
      // with --cancel, a Ctrl-C while submitting cancels the batch as one during the run does
      if (interruptedWhileSubmitting) onInterrupt();
      const stopNow = (what: string) => {
        discardPartialDownloads();
        console.error(`${what}; continue with:\n  ${resumeCommand(file, opts.out, batch.id)}`);
        process.exit(stopExitCode());
      };

      const downloader = new Downloader(client, dir, String(Math.max(0, batch.total - 1)).length);
      const bar = new BatchProgress();
      const show = (b: PublicBatch) => bar.update(b.total, b.counts);
      bar.start(batch.total, batch.counts);
      try {
        await follow(client, batch.id, (index, id, status) => status === 'completed' && downloader.add(index, id), show, stop.signal);
      } catch (err) {
        if (!interrupted) throw err;
      } finally {
        bar.stop();
        // from here on (results, downloads, retries) Ctrl-C ends the run at once; the new handler
        // is in place before the old one goes, so no signal finds none
        const following = stopListening;
        stopListening = onStop(() => stopNow(`batch ${batch.id}: stopped before every result was saved`));
        following();
      }
      if (interrupted && !opts.cancel) stopNow(`batch ${batch.id} keeps running`);
      // cancelled on Ctrl-C: what finished is still downloaded and results.jsonl written, as with --resume --cancel
      if (interrupted) await cancel(client, batch.id);

      // whatever the stream missed (a resume, a reconnect) comes from the results
      const text = await retrying(async () => {
        const res = await client.request(`/v1/batches/${batch.id}/results`);
        return res.text().catch((err: Error) => {
          throw new CliError(`The results of batch ${batch.id} broke off (${err.message})`, 1, true);
        });
      });
      const lines = text.split('\n').filter(Boolean).map((l) => answerAs(batchResultLineSchema, JSON.parse(l), `the results of batch ${batch.id}`));
      for (const l of lines) if (l.status === 'completed') downloader.add(l.index, l.id, l.result?.image.url);
      await downloader.drained();
      // written whatever could not be saved: it says what every item came to, and a file gone from
      // storage for good would otherwise keep it from ever being written
      await writeFile(path.join(dir, 'results.jsonl'), text);
      const failed = lines.filter((l) => l.status !== 'completed').length;
      console.log(path.join(dir, 'results.jsonl'));
      if (interrupted) process.exit(stopExitCode());
      if (downloader.failure) {
        throw new CliError(`${downloader.failures} image${downloader.failures === 1 ? '' : 's'} of completed items could not be saved (first: ${downloader.failure.message}); results.jsonl is written; run ${resumeCommand(file, opts.out, batch.id)} to try them again`, 1);
      }
      if (failed) throw new CliError(`${failed} of ${lines.length} items did not complete (see results.jsonl)`, 2);
    });
}
