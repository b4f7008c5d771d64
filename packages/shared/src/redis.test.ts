import { ReplyError } from 'ioredis';
import { createRedis, redisWriteRefusal } from './redis';

it('a rediss:// URL with Sentinels connects to the master they name over TLS, with the URL credentials', () => {
  const sentinels = [{ host: '127.0.0.1', port: 1 }];
  const secure = createRedis({ kind: 'sentinel', sentinels, name: 'mymaster', url: 'rediss://:pw@ignored:6380' }, 'worker');
  const plain = createRedis({ kind: 'sentinel', sentinels, name: 'mymaster', url: 'redis://ignored:6379' }, 'worker');
  try {
    // before: tls set but not used for the master (ioredis), so the password went out in clear
    expect([secure.options.enableTLSForSentinelMode, Boolean(secure.options.tls), secure.options.password]).toEqual([true, true, 'pw']);
    expect([plain.options.enableTLSForSentinelMode, plain.options.tls]).toEqual([false, undefined]);
  } finally {
    secure.disconnect();
    plain.disconnect();
  }
});

describe('redisWriteRefusal', () => {
  it("names Redis's refusals to write while it answers, and nothing else", () => {
    const refusals = [
      "OOM command not allowed when used memory > 'maxmemory'.",
      'MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist on disk.',
      'NOREPLICAS Not enough good replicas to write.',
    ];
    for (const message of refusals) expect(redisWriteRefusal(new ReplyError(message))).toBe(message);
    for (const other of [new ReplyError('ERR unknown command'), new Error('Connection is closed.'), new Error('BOOM'), 'OOM as a string', undefined]) expect(redisWriteRefusal(other)).toBeUndefined();
  });
});
