import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FsStorage, TEMPORARY_DIR } from './fs-storage';
import { contentTypeFor, isValidStorageKey } from './storage';

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

it('writes under a dot-name beside the file that no key can name, so a write cut short is never served', async () => {
  // small files are written synchronously, large ones through the thread pool: both watched
  const spies = [
    jest.spyOn(jest.requireActual<typeof import('node:fs/promises')>('node:fs/promises'), 'open'),
    jest.spyOn(jest.requireActual<typeof import('node:fs')>('node:fs'), 'writeFileSync'),
  ];
  let written: string[];
  try {
    await storage.put('tokenDDDDDDDD/original.png', Buffer.from('whole'));
    await storage.put('tokenDDDDDDDD/large.png', Buffer.alloc(600 * 1024));
  } finally {
    // a write that found its folder missing is tried again, to the same name
    // folders are opened only to be synced; what matters is where bytes were written
    written = [...new Set(spies.flatMap((spy) => spy.mock.calls.filter((c) => c[1] !== 'r').map((c) => String(c[0]))))];
    for (const spy of spies) spy.mockRestore();
  }
  // the bytes went to a dot-name in the file's folder, then were renamed into place
  const folder = path.join(dir, 'files', 'tokenDDDDDDDD');
  expect(written.map((f) => path.dirname(f))).toEqual([folder, folder]);
  expect(written.map((f) => path.basename(f)).sort()).toEqual([expect.stringMatching(/^\.large\.png\.[0-9a-f]{12}\.tmp$/), expect.stringMatching(/^\.original\.png\.[0-9a-f]{12}\.tmp$/)]);
  expect((await readdir(folder)).sort()).toEqual(['large.png', 'original.png']);
  // nothing can name a dot-name, nor the older shared temporary folder
  for (const key of [`tokenDDDDDDDD/${path.basename(written[0] as string)}`, 'tokenDDDDDDDD/.original.png', `${TEMPORARY_DIR}/original.png`]) {
    expect(isValidStorageKey(key)).toBe(false);
    expect(storage.localPath(key)).toBeUndefined();
  }
  expect(storage.localPath('tokenDDDDDDDD/original.png')).toBe(path.join(folder, 'original.png'));
  await expect(storage.removePrefix(TEMPORARY_DIR)).rejects.toThrow(/invalid storage prefix/);
});

it('sweeps only stale temporary files, and nothing else', async () => {
  const { utimes, writeFile } = await import('node:fs/promises');
  const tmpDir = path.join(dir, 'files', TEMPORARY_DIR);
  await storage.put('tokenCCCCCCCC/original.png', Buffer.from('whole'));
  // left by an older version, which wrote there
  await mkdir(tmpDir, { recursive: true });
  await writeFile(path.join(tmpDir, 'tokenCCCCCCCC-original.png.ab12.tmp'), 'half');
  await writeFile(path.join(tmpDir, 'tokenCCCCCCCC-thumb-256.webp.cd34.tmp'), 'in progress');
  const old = new Date(Date.now() - 3_600_000);
  await utimes(path.join(tmpDir, 'tokenCCCCCCCC-original.png.ab12.tmp'), old, old);
  await utimes(path.join(dir, 'files', 'tokenCCCCCCCC', 'original.png'), old, old);
  expect(await storage.sweepTemporary(600_000)).toBe(1);
  expect(await readdir(tmpDir)).toEqual(['tokenCCCCCCCC-thumb-256.webp.cd34.tmp']);
  expect(await readdir(path.join(dir, 'files', 'tokenCCCCCCCC'))).toEqual(['original.png']);
  expect(await new FsStorage(path.join(dir, 'never-written')).sweepTemporary(0)).toBe(0);
});

it('removes a prefix and knows content types', async () => {
  await storage.put('tokenBBBBBBBB/thumb-256.webp', Buffer.from('x'));
  await storage.put('tokenBBBBBBBB/original-1.png', Buffer.from('x'));
  await storage.put('tokenBBBBBBBB/original-2.png', Buffer.from('x'));
  // a write a process that died part-way left
  await writeFile(path.join(storage.localPath('tokenBBBBBBBB/x.png')!, '..', '.original-3.png.ab12.tmp'), 'partial');
  // all but what is kept, the partial write too (before: it stayed for the whole retention)
  await storage.removeOthers('tokenBBBBBBBB', new Set(['tokenBBBBBBBB/thumb-256.webp', 'tokenBBBBBBBB/original-2.png']));
  expect((await readdir(path.dirname(storage.localPath('tokenBBBBBBBB/x.png')!))).sort()).toEqual(['original-2.png', 'thumb-256.webp']);
  await storage.removeOthers('tokenCCCCCCCCCCnone', new Set());
  await storage.removePrefix('tokenBBBBBBBB');
  expect(await storage.stat('tokenBBBBBBBB/thumb-256.webp')).toBeNull();
  expect(contentTypeFor('a/b.webp')).toBe('image/webp');
  expect(contentTypeFor('a/b.jpg')).toBe('image/jpeg');
});

it('opens a file whole or by byte range, with its size, and null when there is none', async () => {
  const data = Buffer.from('0123456789');
  await storage.put('tokenEEEEEEEE/original.png', data);
  const read = async (range?: { start: number; end: number }) => {
    const opened = await storage.open('tokenEEEEEEEE/original.png', range);
    const chunks: Buffer[] = [];
    for await (const c of opened!.stream) chunks.push(c as Buffer);
    return { info: opened!.info, body: Buffer.concat(chunks).toString() };
  };
  expect(await read()).toMatchObject({ info: { bytes: 10 }, body: '0123456789' });
  expect(await read({ start: 2, end: 4 })).toMatchObject({ info: { bytes: 10 }, body: '234' });
  expect(Math.abs(Date.now() - (await read()).info.modifiedAt!.getTime())).toBeLessThan(60_000);
  expect(await storage.open('tokenEEEEEEEE/missing.png')).toBeNull();
  await expect(storage.open('../etc/passwd')).rejects.toThrow(/invalid storage key/);
});

it('small and large files alike make their folders when missing and leave no temporary file', async () => {
  const small = Buffer.alloc(1000, 1);
  const large = Buffer.alloc(600 * 1024, 2);
  // a fresh storage root: neither the temporary folder nor the generation's folder exists yet
  const fresh = new FsStorage(path.join(dir, 'fresh'));
  await fresh.put('tokenBBBBBBBB/thumb-256.webp', small);
  await fresh.put('tokenCCCCCCCC/original.png', large);
  await fresh.put('tokenCCCCCCCC/thumb-256.webp', small);
  expect((await fresh.read('tokenBBBBBBBB/thumb-256.webp')).equals(small)).toBe(true);
  expect((await fresh.read('tokenCCCCCCCC/original.png')).equals(large)).toBe(true);
  expect(await readdir(path.join(dir, 'fresh', 'files', 'tokenBBBBBBBB'))).toEqual(['thumb-256.webp']);
  expect((await readdir(path.join(dir, 'fresh', 'files', 'tokenCCCCCCCC'))).sort()).toEqual(['original.png', 'thumb-256.webp']);
});
