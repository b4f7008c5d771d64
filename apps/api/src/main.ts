import { ConfigError, createLogger, weakWebhookSecretWarning } from '@imagegen/shared';
import { adminPasswordInBackground } from './admin-password';
import { createApp } from './app';
import { answerClientErrors } from './http/client-error';
import { loadApiConfig } from './config';
import { createApiContext } from './context';

async function main(): Promise<void> {
  const config = loadApiConfig();
  const logger = createLogger('api', config.LOG_LEVEL, { format: config.LOG_FORMAT });
  const adminPassword = adminPasswordInBackground(config, logger);
  const weak = weakWebhookSecretWarning(config.WEBHOOK_SECRET);
  if (weak) logger.warn(weak);
  if (config.apiKeys.length === 0) logger.warn('API_KEYS is empty: open single-tenant dev mode, no API key needed, until a key is made under /admin/tenants/:tenant/keys');
  const ctx = createApiContext(config, adminPassword, logger);
  const server = createApp(ctx).listen(config.PORT, config.HOST, (err?: Error) => {
    // Express 5 calls this on a failed listen too: the 'error' handler below reports that
    if (err) return;
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.PORT;
    logger.info('api listening', { port, api: config.PUBLIC_BASE_URL, dashboard: `${config.PUBLIC_BASE_URL}/admin/queues`, docs: `${config.PUBLIC_BASE_URL}/docs` });
  });
  answerClientErrors(server);
  server.on('error', (err) => {
    logger.error('api server error', { error: err.message });
    process.exit(1);
  });
  const shutdown = (signal: string) => {
    logger.info('shutting down', { signal });
    // waiting requests answer now (202 with the generation as it stands) rather than being cut off
    ctx.beginShutdown();
    adminPassword.stop();
    server.close(() => void ctx.close().then(() => process.exit(0)));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 10_000).unref();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof ConfigError ? err.message : `api failed to start: ${(err as Error).message}`}\n`);
  process.exit(1);
});
