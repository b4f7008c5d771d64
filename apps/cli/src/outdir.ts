import { randomUUID } from 'node:crypto';
import { mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CliError } from './client';

const reasons: Record<string, string> = {
  EEXIST: 'a file of that name is in the way',
  ENOTDIR: 'part of its path is a file, not a folder',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOSPC: 'the disk is full',
};

/**
 * Makes `dir` (and its parents) and proves a file can be written in it, so that a run which
 * would pay for images finds out before submitting that it could not save them. Creating and
 * removing a probe file catches what a permission check alone would not (a read-only mount,
 * a full disk, running as root). `what` names the folder to the user (`--out`). Returns the
 * uppermost folder it made, if it made any (see removingMadeFoldersOnFailure).
 */
export async function ensureWritableFolder(dir: string, what: string): Promise<string | undefined> {
  const probe = path.join(dir, `.imagegen-probe-${randomUUID()}`);
  let made: string | undefined;
  try {
    made = await mkdir(dir, { recursive: true });
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    throw new CliError(`Cannot write into ${what} ${dir}: ${reasons[code] ?? (code || (err as Error).message)}; nothing was submitted`);
  }
  return made;
}

/**
 * `work`'s result; when it fails, the folders ensureWritableFolder made (`made`, the uppermost,
 * down to `dir`) are taken back first, so a run that ends before anything was saved (a refused
 * submission, an unknown batch) leaves no empty folder behind. Only empty folders go: one that
 * holds anything stays, with its parents.
 */
export async function removingMadeFoldersOnFailure<T>(dir: string, made: string | undefined, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    await removeMadeFolders(dir, made);
    throw err;
  }
}

async function removeMadeFolders(dir: string, made: string | undefined): Promise<void> {
  if (!made) return;
  for (let at = dir; ; at = path.dirname(at)) {
    if (!(await rmdir(at).then(() => true, () => false))) return;
    if (at === made || path.dirname(at) === at) return;
  }
}
