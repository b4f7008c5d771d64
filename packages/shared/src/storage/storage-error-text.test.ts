import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { newFileToken } from '../ids';
import { storageErrorText } from './storage';

it('keeps what went wrong and drops the paths a file system names, file tokens with them', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-storage-error-'));
  const token = newFileToken();
  try {
    const errors = await Promise.all([
      readFile(path.join(dir, token, 'original.png')).catch((e: unknown) => e),
      rename(path.join(dir, token, 'a.tmp'), path.join(dir, token, 'original.png')).catch((e: unknown) => e),
    ]);
    const texts = errors.map(storageErrorText);
    expect(texts).toEqual([`ENOENT: no such file or directory, open '<file>'`, `ENOENT: no such file or directory, rename '<file>' -> '<file>'`]);
    for (const t of texts) {
      expect(t).not.toContain(token);
      expect(t).not.toContain(dir);
    }
    // a message naming no file is kept as it is
    expect(storageErrorText(new Error('ENOSPC: no space left on device'))).toBe('ENOSPC: no space left on device');
    expect(storageErrorText(new Error("The bucket 'images' does not exist"))).toBe("The bucket 'images' does not exist");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
