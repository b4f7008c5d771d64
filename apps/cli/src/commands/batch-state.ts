import { writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { publicGenerationSchema } from '@imagegen/shared/schemas';
import { CliError, type ApiClient } from '../client';
import { resumeCommand } from '../resume';

/** The file in an --out folder naming the batch whose results it holds. */
export const STATE_FILE = '.imagegen-batch.json';

/** The names `batch` gives what it saves: `results.jsonl` and `<index>-<generation id>.<ext>`. */
const ownFile = (name: string) => name === 'results.jsonl' || /^\d+-gen_[A-Za-z0-9]+\.[a-z0-9]+$/.test(name);

/**
 * Refuses to submit a new batch into a folder that holds another one's results: running the same
 * command again would pay for every item a second time, when `--resume` continues the first.
 */
export async function refuseFolderOfAnotherBatch(dir: string, file: string, out: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  if (names.includes(STATE_FILE)) {
    const id = await batchOfStateFile(dir, out);
    if (typeof id === 'string') {
      throw new CliError(`${out} already holds batch ${id}; continue it with: ${resumeCommand(file, out, id)}, or choose another --out folder; nothing was submitted`);
    }
  }
  if (names.some(ownFile)) throw new CliError(`${out} already holds the results of an earlier batch; continue that one with --resume <its id>, or choose another --out folder; nothing was submitted`);
}

/**
 * Refuses to resume batch `batchId` into a folder that holds another batch's results: its images
 * would be mixed with them and its results.jsonl written over theirs. A folder without the state
 * file (its results saved by an older release, or the file removed) is judged by one of the
 * generations it holds: the API says which batch that is.
 */
export async function refuseFolderOfOtherBatch(client: ApiClient, dir: string, batchId: string, out: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const held = names.includes(STATE_FILE) ? await batchOfStateFile(dir, out) : await batchOfHeldResults(client, dir, names);
  if (typeof held === 'string' && held !== batchId) throw new CliError(`${out} holds batch ${held}, not ${batchId}; resume ${batchId} into its own --out folder`);
  if (held === null) throw new CliError(`${out} holds results, and the API cannot tell which batch they are of (their records are gone, or another key's); resume ${batchId} into its own --out folder, or remove those files`);
}

/** The batch the folder's state file names; one that cannot be read says so, naming it. */
async function batchOfStateFile(dir: string, out: string): Promise<string | undefined> {
  const file = path.join(dir, STATE_FILE);
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const id = (JSON.parse(text) as { batchId?: unknown } | null)?.batchId;
    if (typeof id === 'string') return id;
  } catch {
    // said below
  }
  throw new CliError(`${path.join(out, STATE_FILE)} is not a batch's state (it should be {"batchId": "batch_…"}): fix it, or remove it if the folder holds no batch's results`);
}

/**
 * The batch whose results a folder without a state file holds, from one generation it names (an
 * image's name, else results.jsonl's first line): undefined when it holds none, null when that
 * generation is unknown to the API (expired, or another tenant's).
 */
async function batchOfHeldResults(client: ApiClient, dir: string, names: string[]): Promise<string | null | undefined> {
  const image = names.map((n) => /^\d+-(gen_[A-Za-z0-9]+)\.[a-z0-9]+$/.exec(n)?.[1]).find((id) => id !== undefined);
  const id =
    image ??
    (names.includes('results.jsonl')
      ? await readFile(path.join(dir, 'results.jsonl'), 'utf8').then(
          (text) => {
            const first = (JSON.parse(text.split('\n', 1)[0] ?? '') as { id?: unknown }).id;
            return typeof first === 'string' && /^gen_[A-Za-z0-9]+$/.test(first) ? first : undefined;
          },
          () => undefined,
        )
      : undefined);
  if (!id) return undefined;
  try {
    return (await client.json(`/v1/generations/${id}`, publicGenerationSchema)).batchId ?? null;
  } catch (err) {
    if (err instanceof CliError && err.status === 404) return null;
    throw err;
  }
}

/** Notes which batch the folder holds, at once (synchronously: a Ctrl-C cannot come between). */
export function recordBatch(dir: string, batchId: string, file: string): void {
  writeFileSync(path.join(dir, STATE_FILE), `${JSON.stringify({ batchId, file: path.resolve(file), at: new Date().toISOString() })}\n`);
}
