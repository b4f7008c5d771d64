import { createRedis } from './redis';

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
