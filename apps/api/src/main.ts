import { randomBytes } from 'node:crypto';
import { ConfigError, createLogger } from '@imagegen/shared';
import { createApp } from './app';
import { loadApiConfig } from './config';
import { createApiContext } from './context';

function main(): void {
  const config = loadApiConfig();
  const logger = createLogger('api', config.LOG_LEVEL);
  let adminPassword = config.ADMIN_PASSWORD;
  if (!adminPassword) {
    adminPassword = randomBytes(12).toString('base64url');
    logger.warn('ADMIN_PASSWORD is not set: generated one for this run', { adminUser: config.ADMIN_USER, adminPassword });
  }
  if (config.apiKeys.length === 0) logger.warn('API_KEYS is empty: open single-tenant dev mode, no API key needed');
  const ctx = createApiContext(config, adminPassword, logger);
  const server = createApp(ctx).listen(config.PORT, config.HOST, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.PORT;
    logger.info('api listening', { port, api: config.PUBLIC_BASE_URL, dashboard: `${config.PUBLIC_BASE_URL}/admin/queues`, docs: `${config.PUBLIC_BASE_URL}/docs` });
  });
  server.on('error', (err) => {
    logger.error('api server error', { error: err.message });
    process.exit(1);
  });
  const shutdown = (signal: string) => {
    logger.info('shutting down', { signal });
    // waiting requests answer now (202 with the generation as it stands) rather than being cut off
    ctx.beginShutdown();
    server.close(() => void ctx.close().then(() => process.exit(0)));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 10_000).unref();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

try {
  main();
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : `api failed to start: ${(err as Error).message}`}\n`);
  process.exit(1);
}
