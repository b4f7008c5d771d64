import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FsStorage } from './fs-storage';
import { contentTypeFor } from './storage';

let dir: string;
let storage: FsStorage;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'fs-storage-'));
  storage = new FsStorage(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

it('writes through a temporary name and leaves only the final file', async () => {
  await storage.put('tokenAAAAAAAA/original.png', Buffer.from('one'));
  await storage.put('tokenAAAAAAAA/original.png', Buffer.from('two!'));
  expect((await storage.read('tokenAAAAAAAA/original.png')).toString()).toBe('two!');
  const info = await storage.stat('tokenAAAAAAAA/original.png');
  expect(info?.bytes).toBe(4);
  expect(Math.abs(Date.now() - info!.modifiedAt!.getTime())).toBeLessThan(60_000);
  expect(await readdir(path.join(dir, 'files', 'tokenAAAAAAAA'))).toEqual(['original.png']);
});

it('refuses keys that could leave the storage root', async () => {
  for (const key of ['../etc/passwd', 'tokenAAAAAAAA/../../x.png', '/abs/x.png', 'tokenAAAAAAAA/a/b.png', 'short/x.png']) {
    await expect(storage.put(key, Buffer.from('x'))).rejects.toThrow(/invalid storage key/);
  }
  expect(await storage.stat('tokenAAAAAAAA/missing.png')).toBeNull();
});

it('sweeps only stale temporary files', async () => {
  const { utimes, writeFile, mkdir } = await import('node:fs/promises');
  const tokenDir = path.join(dir, 'files', 'tokenCCCCCCCC');
  await mkdir(tokenDir, { recursive: true });
  await writeFile(path.join(tokenDir, 'original.png.ab12.tmp'), 'half');
  await writeFile(path.join(tokenDir, 'thumb-256.webp.cd34.tmp'), 'in progress');
  await writeFile(path.join(tokenDir, 'original.png'), 'whole');
  const old = new Date(Date.now() - 3_600_000);
  await utimes(path.join(tokenDir, 'original.png.ab12.tmp'), old, old);
  expect(await storage.sweepTemporary(600_000)).toBe(1);
  expect((await readdir(tokenDir)).sort()).toEqual(['original.png', 'thumb-256.webp.cd34.tmp']);
});

it('removes a prefix and knows content types', async () => {
  await storage.put('tokenBBBBBBBB/thumb-256.webp', Buffer.from('x'));
  await storage.removePrefix('tokenBBBBBBBB');
  expect(await storage.stat('tokenBBBBBBBB/thumb-256.webp')).toBeNull();
  expect(contentTypeFor('a/b.webp')).toBe('image/webp');
  expect(contentTypeFor('a/b.jpg')).toBe('image/jpeg');
});
