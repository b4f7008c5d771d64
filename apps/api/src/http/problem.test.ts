import type { Server } from 'node:http';
import express from 'express';
import { ReplyError } from 'ioredis';
import { createLogger } from '@imagegen/shared';
import { errorHandler, isRedisDown } from './problem';

it('recognises Redis being away, whichever layer reports it', () => {
  expect(isRedisDown(new Error("Stream isn't writeable and enableOfflineQueue options is false"))).toBe(true);
  expect(isRedisDown(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }))).toBe(true);
  expect(isRedisDown(Object.assign(new Error('Reached the max retries per request limit'), { name: 'MaxRetriesPerRequestError' }))).toBe(true);
  expect(isRedisDown(new Error('Connection is closed.'))).toBe(true);
  expect(isRedisDown(new Error('Command timed out'))).toBe(true);
  // a Cluster whose master for our slot is down or moving, a demoted or loading master
  for (const message of ['Too many Cluster redirections. Last error: ReplyError: MOVED 10984 127.0.0.1:45005', 'CLUSTERDOWN The cluster is down', 'TRYAGAIN Multiple keys request during rehashing of slot', 'Failed to refresh slots cache.', "READONLY You can't write against a read only replica.", 'LOADING Redis is loading the dataset in memory', 'BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.']) {
    expect([message, isRedisDown(new Error(message))]).toEqual([message, true]);
  }
  expect(isRedisDown(Object.assign(new Error('Failed to refresh slots cache.'), { name: 'ClusterAllFailedError' }))).toBe(true);
  expect(isRedisDown(new Error('Cannot read properties of undefined'))).toBe(false);
  expect(isRedisDown(new Error('ERR wrong number of arguments for READONLY'))).toBe(false);
});

it('logs an unexpected failure without the file token its path or its message would carry', async () => {
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  const keep = (msg: string, fields?: Record<string, unknown>) => void lines.push({ msg, fields });
  const logger = { debug: keep, info: keep, warn: keep, error: keep, child: () => logger };
  const token = 'Zk3p0QvTq8yW1xRmN2bC4d';
  const app = express();
  app.get('/FILES/:token/:name', () => {
    throw Object.assign(new Error(`EMFILE: too many open files, open '/data/files/${token}/original.png'`), { code: 'EMFILE' });
  });
  app.use(errorHandler(logger));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  try {
    const port = (server.address() as { port: number }).port;
    const res = await fetch(`http://127.0.0.1:${port}/FILES/${token}/original.png`);
    expect(res.status).toBe(500);
    expect(res.headers.get('content-type')).toMatch(/problem\+json/);
    expect(await res.text()).not.toContain(token);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  expect(lines).toEqual([{ msg: 'unhandled error', fields: { method: 'GET', path: '/files/[redacted]', error: "EMFILE: too many open files, open '<file>'" } }]);
});

it('answers a Redis that is failing over, loading or busy with 503 saying so, not that it is unreachable', async () => {
  const app = express();
  app.get('/x', () => {
    throw new ReplyError("READONLY You can't write against a read only replica.");
  });
  app.use(errorHandler(createLogger('test', 'silent')));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as { port: number }).port}/x`);
    expect({ status: res.status, retryAfter: res.headers.get('retry-after') }).toEqual({ status: 503, retryAfter: '5' });
    const body = (await res.json()) as { detail: string };
    expect(body.detail).toMatch(/failing over, loading or busy/);
    expect(body.detail).not.toMatch(/not reachable/);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
