import { ConfigError, createLogger, weakWebhookSecretWarning } from '@imagegen/shared';
import { loadWorkerConfig } from './config';
import { startWorkerRuntime } from './runtime';

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const logger = createLogger('worker', config.LOG_LEVEL, { format: config.LOG_FORMAT });
  const weak = weakWebhookSecretWarning(config.WEBHOOK_SECRET);
  if (weak) logger.warn(weak);
  const runtime = await startWorkerRuntime(config, logger);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info('draining: active jobs finish, no new ones start', { signal });
      runtime.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof ConfigError ? err.message : `worker failed to start: ${(err as Error).message}`}\n`);
  process.exit(1);
});
