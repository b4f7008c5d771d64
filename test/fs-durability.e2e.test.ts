import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

interface Syscall {
  pid: string;
  name: string;
  /** The call as strace wrote it when it began: `name(args`. */
  text: string;
  result: number;
  /** Line numbers where it began and where it returned. */
  start: number;
  end: number;
}

/** strace -f output read into calls, a call another thread interrupted joined to its return. */
function syscalls(trace: string): Syscall[] {
  const calls: Syscall[] = [];
  const pending = new Map<string, Syscall>();
  trace.split('\n').forEach((line, i) => {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) return;
    const [, pid, rest] = m as unknown as [string, string, string];
    const resumed = /^<\.\.\. (\w+) resumed>.*= (-?\d+)/.exec(rest);
    if (resumed) {
      const call = pending.get(pid);
      if (call) Object.assign(call, { result: Number(resumed[2]), end: i });
      pending.delete(pid);
      return;
    }
    const name = /^(\w+)\(/.exec(rest)?.[1];
    if (!name) return;
    const call: Syscall = { pid, name, text: rest, result: Number(/= (-?\d+)/.exec(rest)?.[1] ?? NaN), start: i, end: i };
    if (rest.endsWith('<unfinished ...>')) pending.set(pid, call);
    calls.push(call);
  });
  return calls;
}

/**
 * What the disk holds once `put` returns, read off its system calls (strace): the file's bytes
 * synced before it is renamed into place, and the folder that took the new name (and the folder
 * that took a new folder) synced after, so a machine that loses power right after a generation
 * is recorded as stored still has its files.
 */
describe('STORAGE=fs writes', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-durable-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('are on the disk, name and folder included, before put returns', async () => {
    const data = path.join(dir, 'data');
    const trace = path.join(dir, 'trace.txt');
    const script = `
      const { FsStorage } = require('@imagegen/shared');
      const storage = new FsStorage(process.argv[1]);
      storage.put('tokenAAAAAAAA/first.png', Buffer.alloc(10, 1))
        .then(() => { process.stdout.write('returned\\n'); return storage.put('tokenAAAAAAAA/second.png', Buffer.alloc(10, 2)); });
    `;
    // the first put makes the generation's folder; the second goes into it
    const { stdout } = await run('strace', ['-f', '-qq', '-e', 'trace=openat,open,fdatasync,fsync,rename,renameat,renameat2,write', '-o', trace, process.execPath, '-e', script, data], { cwd: __dirname });
    expect(stdout).toBe('returned\n');
    const calls = syscalls(await readFile(trace, 'utf8'));
    const folder = path.join(data, 'files', 'tokenAAAAAAAA');
    /** The first call from call `from` on that passes `test`, or undefined. */
    const find = (test: (c: Syscall) => boolean, from = 0) => calls.find((c) => c.start >= from && test(c));
    const opened = (file: string, flag: string, from = 0) => find((c) => c.text.includes(`"${file}"`) && c.text.includes(flag) && c.result >= 0, from);
    /** The sync of the descriptor `open` returned, ended before that descriptor is opened again. */
    const syncOf = (open: Syscall) => find((c) => new RegExp(`^(fsync|fdatasync)\\(${open.result}[ )]`).test(c.text), open.start + 1);

    const returned = find((c) => c.text.startsWith('write(1, "returned'))!;
    for (const name of ['first.png', 'second.png']) {
      const renamed = find((c) => c.name.startsWith('rename') && c.text.includes(`"${folder}/${name}"`))!;
      const tmp = find((c) => c.text.includes(`"${folder}/.${name}.`) && c.text.includes('O_WRONLY') && c.result >= 0)!;
      expect({ name, written: !!tmp, renamed: !!renamed && renamed.start > tmp.start }).toEqual({ name, written: true, renamed: true });
      // the bytes are on the disk before the name is given
      const dataSync = syncOf(tmp);
      expect({ name, dataSyncedBeforeRename: !!dataSync && dataSync.end < renamed.start }).toEqual({ name, dataSyncedBeforeRename: true });
      // the name is on the disk before put returns
      const folderOpen = opened(folder, 'O_RDONLY', renamed.end);
      const folderSync = folderOpen && syncOf(folderOpen);
      const doneBy = name === 'first.png' ? returned.start : Infinity;
      expect({ name, folderSynced: !!folderSync && folderSync.end < doneBy }).toEqual({ name, folderSynced: true });
      if (name === 'first.png') {
        // and so is the new folder's own entry
        const parentOpen = opened(path.dirname(folder), 'O_RDONLY', renamed.end);
        const parentSync = parentOpen && syncOf(parentOpen);
        expect({ parentSynced: !!parentSync && parentSync.end < returned.start }).toEqual({ parentSynced: true });
      }
    }
  });
});
