import type { Server } from 'node:http';
import express from 'express';
import { basicAuth } from './auth';
import { errorHandler } from './problem';
import { createLogger } from '@imagegen/shared';

let server: Server;
let base: string;
let current: string | undefined;

beforeAll(async () => {
  const app = express();
  app.get('/admin', basicAuth('ops', () => current), (_req, res) => void res.json({ ok: true }));
  app.use(errorHandler(createLogger('test', 'silent')));
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const as = (password: string) => fetch(`${base}/admin`, { headers: { Authorization: `Basic ${Buffer.from(`ops:${password}`).toString('base64')}` } }).then((r) => r.status);

it('follows the password as it changes: the new one opens, the old one no longer does', async () => {
  current = undefined;
  expect(await as('first')).toBe(503);
  current = 'first';
  expect([await as('first'), await as('second')]).toEqual([200, 401]);
  // reset in Redis and adopted by this process
  current = 'second';
  expect([await as('first'), await as('second')]).toEqual([401, 200]);
});
