import { ReplyError } from 'ioredis';
import { createRedis, redisNotServing, redisWriteRefusal } from './redis';

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

describe('redisNotServing', () => {
  it('names the refusals and the answers of a Redis that cannot take writes for a while, and nothing else', () => {
    const answers = [
      "OOM command not allowed when used memory > 'maxmemory'.",
      "READONLY You can't write against a read only replica.",
      'MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to no.',
      'LOADING Redis is loading the dataset in memory',
      'TRYAGAIN Multiple keys request during rehashing of slot',
      'CLUSTERDOWN The cluster is down',
      'BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.',
    ];
    for (const message of answers) expect(redisNotServing(new ReplyError(message))).toBe(message);
    // what a Cluster client says once it has retried CLUSTERDOWN or TRYAGAIN as often as it may
    for (const answer of ['CLUSTERDOWN Hash slot not served', 'TRYAGAIN Multiple keys request during rehashing of slot']) {
      const message = `Too many Cluster redirections. Last error: ReplyError: ${answer}`;
      expect(redisNotServing(new Error(message))).toBe(message);
    }
    expect(redisNotServing(new Error('Too many Cluster redirections. Last error: ReplyError: MOVED 10984 127.0.0.1:45005'))).toBeUndefined();
    for (const other of [new ReplyError('ERR wrong number of arguments for READONLY'), new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value'), new Error('Connection is closed.')]) expect(redisNotServing(other)).toBeUndefined();
    // only the lasting refusals are write refusals
    expect(redisWriteRefusal(new ReplyError("READONLY You can't write against a read only replica."))).toBeUndefined();
  });
});
