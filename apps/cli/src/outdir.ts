import { randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
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
 * a full disk, running as root). `what` names the folder to the user (`--out`).
 */
export async function ensureWritableFolder(dir: string, what: string): Promise<void> {
  const probe = path.join(dir, `.imagegen-probe-${randomUUID()}`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    throw new CliError(`Cannot write into ${what} ${dir}: ${reasons[code] ?? (code || (err as Error).message)}; nothing was submitted`);
  }
}
