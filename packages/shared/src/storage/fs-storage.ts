import { constants, createReadStream } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { isValidStorageKey, isValidStoragePrefix, type ByteRange, type OpenedFile, type Storage, type StoredFileInfo } from './storage';

/** Where writes in progress lived before they moved beside their files; still swept of leftovers. No key can name it. */
export const TEMPORARY_DIR = '.tmp';

/**
 * Writes `data` to a new file in as few thread-pool trips as it takes (`writeFile` goes 512 KiB
 * at a time), and onto the disk before it returns.
 */
async function writeWhole(file: string, data: Buffer): Promise<void> {
  const handle = await open(file, 'w');
  try {
    for (let at = 0; at < data.length; ) at += (await handle.write(data, at, data.length - at)).bytesWritten;
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** Puts a folder's entries (a rename into it, a folder made in it) onto the disk. */
async function syncFolder(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Files under `<DATA_DIR>/files`, shared by the API (reads) and workers (writes). Each write
 * goes to a dot-name beside its file first (`<token>/.<name>.<random>.tmp`), is synced to the
 * disk and renamed into place (the folder synced too), so a file appears under its name only
 * when whole, even after a process is killed mid-write or the machine loses power. No key names
 * a dot-name (nothing can serve one); a write cut short leaves one in its generation's folder,
 * which goes when the folder does. Beside its file, rather than in one
 * shared folder, because creating and renaming entries in one folder that every write churns
 * costs several times more.
 */
export class FsStorage implements Storage {
  private readonly root: string;
  private readonly tmpDir: string;

  constructor(dataDir: string) {
    this.root = path.resolve(dataDir, 'files');
    this.tmpDir = path.join(this.root, TEMPORARY_DIR);
  }

  /** The files folder can be read (the API only reads; a folder no write has made yet holds nothing to read). */
  async reachable(): Promise<void> {
    await access(this.root, constants.R_OK).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  private pathFor(key: string): string {
    if (!isValidStorageKey(key)) throw new Error(`invalid storage key: ${JSON.stringify(key)}`);
    return path.join(this.root, key);
  }

  /**
   * A generation's folder is made by its first write, when that finds it missing. Every call
   * goes through the thread pool, small files too: creating a file costs a local disk anything
   * from microseconds to milliseconds of kernel time (a network one more), and none of it may
   * hold up the worker's thread, which keeps a thousand generations and their locks going.
   */
  async put(key: string, data: Buffer): Promise<{ bytes: number }> {
    const target = this.pathFor(key);
    const dir = path.dirname(target);
    const tmp = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      let made = false;
      await writeWhole(tmp, data).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        made = (await mkdir(dir, { recursive: true })) !== undefined;
        await writeWhole(tmp, data);
      });
      await rename(tmp, target);
      // the record will say the file is stored: a machine that loses power after that must still
      // have it, so the new name (and a new folder's) is on the disk before this returns
      await Promise.all([syncFolder(dir), made ? syncFolder(path.dirname(dir)) : undefined]);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return { bytes: data.length };
  }

  read(key: string): Promise<Buffer> {
    return readFile(this.pathFor(key));
  }

  async stat(key: string): Promise<StoredFileInfo | null> {
    try {
      const s = await stat(this.pathFor(key));
      return s.isFile() ? { bytes: s.size, modifiedAt: s.mtime } : null;
    } catch {
      return null;
    }
  }

  localPath(key: string): string | undefined {
    return isValidStorageKey(key) ? path.join(this.root, key) : undefined;
  }

  createReadStream(key: string): Readable {
    return createReadStream(this.pathFor(key));
  }

  async open(key: string, range?: ByteRange): Promise<OpenedFile | null> {
    const handle = await open(this.pathFor(key), 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (!handle) return null;
    try {
      // size and time of the file this descriptor holds, whatever replaces the name meanwhile
      const s = await handle.stat();
      if (!s.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      // the stream owns the descriptor from here: destroying it closes the file
      const stream = handle.createReadStream(range ? { start: range.start, end: range.end } : {});
      return { stream, info: { bytes: s.size, modifiedAt: s.mtime } };
    } catch (err) {
      await handle.close();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /**
   * Removes temporary files left in the shared temporary folder by a process killed mid-write.
   * Only old ones: other workers sharing the directory may be writing right now. Returns how
   * many were removed.
   */
  async sweepTemporary(olderThanMs: number, now = Date.now()): Promise<number> {
    const files = await readdir(this.tmpDir).catch(() => [] as string[]);
    let removed = 0;
    for (const file of files) {
      const full = path.join(this.tmpDir, file);
      const s = await stat(full).catch(() => null);
      if (s?.isFile() && now - s.mtimeMs > olderThanMs) {
        await rm(full, { force: true });
        removed++;
      }
    }
    return removed;
  }

  async removePrefix(prefix: string): Promise<void> {
    if (!isValidStoragePrefix(prefix)) throw new Error('invalid storage prefix');
    await rm(path.join(this.root, prefix), { recursive: true, force: true });
  }

  async removeOthers(prefix: string, keep: ReadonlySet<string>): Promise<void> {
    if (!isValidStoragePrefix(prefix)) throw new Error('invalid storage prefix');
    const folder = path.join(this.root, prefix);
    const names = await readdir(folder).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    // dot-names are the temporary files of writes (see put): once the result is final, any left
    // is one a process that died part-way left (kept, it would stay for the whole retention), or
    // one a runner that lost its turn is making, whose rename then fails
    await Promise.all(names.filter((name) => !keep.has(`${prefix}/${name}`)).map((name) => rm(path.join(folder, name), { force: true })));
  }
}
