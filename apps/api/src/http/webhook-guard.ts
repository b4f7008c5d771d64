import { webhookUrlProblem, type WebhookTarget } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { invalid } from './problem';

/**
 * The SSRF guard at submit time: a webhook URL whose host is (or resolves to) a loopback,
 * private, link-local, metadata or otherwise non-public address is refused with 400, unless
 * WEBHOOK_ALLOW_PRIVATE. Workers check again at every delivery against the address connected to.
 */
export async function assertWebhookAllowed(ctx: ApiContext, target: WebhookTarget | undefined, path = 'webhook.url'): Promise<void> {
  if (!target) return;
  const problem = await webhookUrlProblem(target.url, { allowPrivate: ctx.config.WEBHOOK_ALLOW_PRIVATE });
  if (problem) throw invalid(`The webhook URL is not allowed: it ${problem}`, [{ path, message: problem }]);
}
