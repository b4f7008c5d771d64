import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ApiClient } from '../client';
import { refuseFolderOfAnotherBatch, refuseFolderOfOtherBatch, STATE_FILE } from './batch-state';

describe('a folder whose state file cannot be read', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'imagegen-state-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it.each(['{"batchId":', 'null', '[]', '{"batchId": 7}'])('%s: names the file and what it should hold, for a new batch and a resumed one alike', async (text) => {
    await writeFile(path.join(dir, STATE_FILE), text);
    const said = `out/${STATE_FILE} is not a batch's state (it should be {"batchId": "batch_…"}): fix it, or remove it if the folder holds no batch's results`;
    // before: "Unexpected end of JSON input", "Cannot read properties of null (reading 'batchId')", or taken as no batch at all
    await expect(refuseFolderOfAnotherBatch(dir, 'p.txt', 'out')).rejects.toThrow(said);
    // (no request is made: the folder is judged by its state file)
    await expect(refuseFolderOfOtherBatch(new ApiClient({ url: 'http://127.0.0.1:9' }), dir, 'batch_x', 'out')).rejects.toThrow(said);
  });
});
