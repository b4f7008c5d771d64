import { z } from 'zod';
import {
  apiKeyListSchema,
  MAX_BATCH_ITEMS,
  batchEnvelopeSchema,
  batchItemSchema,
  batchListSchema,
  batchResultLineSchema,
  createdApiKeySchema,
  createGenerationSchema,
  publicBatchSchema,
  usageSchema,
  deliveryAttemptSchema,
  deliveryListSchema,
  generationListSchema,
  generationRequestSchema,
  healthSchema,
  problemSchema,
  publicGenerationSchema,
  readinessSchema,
  redeliverySchema,
  batchRedeliverSchema,
  seedAcceptedSchema,
  seedResponseSchema,
  failedDeliveryListSchema,
  webhookRecoverSchema,
  webhookRecoverySchema,
  webhookEnvelopeSchema,
  webhookSecretSchema,
  CONTENT_TYPES,
  MAX_USAGE_RETENTION_DAYS,
  TENANT_RULE,
  tenantSchema,
  type WebhookEvent,
} from '@imagegen/shared';
import { WEBHOOK_VERIFICATION_MD } from './webhook-verification';
import { batchListQuery } from './routes/batches';
import { generationListQuery, MAX_PREFER_WAIT_SECONDS } from './routes/generations';
import { usageQuerySchema } from './routes/usage';
import { failedDeliveriesQuery } from './services/failed-deliveries';
import { idempotencyKeySchema } from './services/idempotency';

/**
 * What zod adds that says nothing to a reader of the reference: the date-time format's own regex
 * beside `format: date-time`, and the safe-integer bounds of every integer. The dialect is the
 * document's (OpenAPI 3.1's), so no schema names its own.
 */
const plainer: NonNullable<Parameters<typeof z.toJSONSchema>[1]>['override'] = ({ jsonSchema }) => {
  if (jsonSchema.format === 'date-time') delete jsonSchema.pattern;
  if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
  if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
};
const toSchema = (s: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any', override: plainer });
  return rest;
};
/** Request bodies are described as clients may send them, responses as the API answers. */
const schema = (s: z.ZodType) => toSchema(s, 'input');
const responseSchema = (s: z.ZodType) => toSchema(s, 'output');

const webhookSignatureHeaders = {
  'webhook-id': { schema: { type: 'string' }, description: 'msg_…; the same on every retry: use it to deduplicate' },
  'webhook-timestamp': { schema: { type: 'string' }, description: 'Unix seconds of this attempt' },
  'webhook-signature': { schema: { type: 'string' }, description: 'v1,<base64 HMAC-SHA256 of "id.timestamp.body">, space-separated when two secrets sign (rotation overlap)' },
};

/** A webhook's body: the envelope for this event, its `data` the named schema of the GET's answer. */
const webhookBodySchema = (type: WebhookEvent, data: string) => {
  const envelope = responseSchema(webhookEnvelopeSchema(z.record(z.string(), z.unknown())).extend({ type: z.literal(type) }));
  return { ...envelope, properties: { ...(envelope.properties as object), data: { $ref: `#/components/schemas/${data}` } } };
};

const webhookEvent = (type: WebhookEvent, summary: string, data = 'Generation') => ({
  post: {
    summary,
    description: 'Signed per Standard Webhooks with the secret from GET /v1/webhooks/secret. Answer 2xx within 10 s; anything else is retried (0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h with jitter; a longer Retry-After is honoured up to 10 h); 410 stops.',
    parameters: Object.entries(webhookSignatureHeaders).map(([name, h]) => ({ name, in: 'header', required: true, ...h })),
    requestBody: {
      content: {
        'application/json': {
          schema: webhookBodySchema(type, data),
        },
      },
    },
    responses: { '200': { description: 'Received' }, '410': { description: 'Gone: stop delivering this one' } },
  },
});

/** A route's query parameters, from the schema that validates them. */
const queryParameters = (query: z.ZodObject) => Object.entries(query.shape).map(([name, field]) => ({ name, in: 'query', required: false, schema: schema(field as z.ZodType) }));

type Operation = { security?: unknown[]; parameters?: unknown[]; responses: Record<string, unknown> };

/** Path parameters whose form a route checks, described by the schema it checks with. */
const PATH_PARAMETERS: Record<string, object> = {
  tenant: { description: `The tenant's name: ${TENANT_RULE}`, schema: schema(tenantSchema) },
};

/**
 * Every operation of every path with `{name}` in it declares that path parameter (OpenAPI 3.1
 * requires it; client generators and the docs' "try it" need it), beside its own parameters.
 * Every authenticated operation (the document's default security, or operator credentials) can
 * also be answered by the credentials' check, before the route: 400 for more than one
 * Authorization header, 401, and 503 while Redis does not answer (it holds the managed keys, a
 * generated admin password, and everything the routes behind the check read).
 */
function withCommonAnswers<T extends Record<string, object>>(paths: T): T {
  for (const [template, operations] of Object.entries(paths)) {
    const names = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
    for (const operation of Object.values(operations) as Operation[]) {
      if (names.length > 0) {
        const pathParameters = names.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' }, ...PATH_PARAMETERS[name] }));
        operation.parameters = [...pathParameters, ...(operation.parameters ?? [])];
      }
      if (operation.security?.length !== 0) operation.responses = { ...errors(400, 401, 503), ...operation.responses };
    }
  }
  return paths;
}

type Headers = Record<string, { description: string; required?: boolean; schema: object }>;
const header = (description: string, schema: object = { type: 'string' }, required = false) => ({ description, schema, ...(required ? { required } : {}) });
const seconds = { type: 'integer', minimum: 0 };

const rateLimitHeaders: Headers = {
  'RateLimit-Limit': header('Submissions this tenant may make per minute (no RateLimit headers on an idempotent replay, which costs none)', seconds),
  'RateLimit-Remaining': header('Submissions left in the current minute', seconds),
  'RateLimit-Reset': header('Seconds until the current minute ends', seconds),
};
const retryAfter = (when: string) => ({ 'Retry-After': header(`Seconds to wait before ${when}`, seconds, true) });
const location = (what: string) => ({ Location: header(what, { type: 'string', format: 'uri' }, true) });
const idempotentReplayed = { 'Idempotent-Replayed': header('true when the answer is that of an earlier request with the same Idempotency-Key and body') };

/** What every answer of a status says, and the headers it always carries. */
const PROBLEMS: Record<number, { description: string; headers?: Headers }> = {
  400: { description: 'Invalid request: errors names each bad field, parameter or header' },
  401: {
    description: 'No valid credentials',
    headers: { 'WWW-Authenticate': header('The scheme to authenticate with: Bearer (an API key), or Basic realm="imagegen admin" on operator routes', { type: 'string' }, true) },
  },
  404: { description: 'Not found' },
  405: { description: 'Method not allowed', headers: { Allow: header('The methods the path answers', { type: 'string' }, true) } },
  409: { description: 'Conflict' },
  412: { description: 'Precondition failed (If-Match, If-Unmodified-Since)' },
  413: { description: 'Payload too large' },
  415: { description: 'Unsupported media type' },
  416: { description: 'Range not satisfiable', headers: { 'Content-Range': header('bytes */<size of the file>', { type: 'string' }, true) } },
  429: { description: 'Over a quota', headers: { ...retryAfter('submitting again'), ...rateLimitHeaders } },
  502: { description: 'The generation failed' },
  503: { description: 'Unavailable: Redis does not answer, or refuses writes (full, or unable to save); for files, the file store does not answer', headers: retryAfter('trying again') },
};

/** A problem+json answer of `status`, with the headers that status carries and any of this operation's own. */
const problem = (status: number, headers: Headers = {}) => {
  const { description, headers: always } = PROBLEMS[status] ?? { description: 'Problem' };
  const all = { ...always, ...headers };
  return { description, ...(Object.keys(all).length ? { headers: all } : {}), content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
};
const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), problem(c)]));

const json = (name: string) => ({ content: { 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } } });
const recoveryStarted = { description: 'Started, or the same one already running', headers: location('/v1/webhooks/recoveries/{id}: follow it there'), ...json('WebhookRecovery') };
/** Asked while another recovery of the tenant runs. */
const recoveryRunning = problem(409, location('The recovery running: follow it, and ask again once it has ended'));
const genRef = json('Generation');

const { description: idempotencyKeyDescription, ...idempotencyKeyShape } = schema(idempotencyKeySchema);
const idempotencyKeyParameter = { name: 'Idempotency-Key', in: 'header', required: false, description: idempotencyKeyDescription, schema: idempotencyKeyShape };

const generationCreated: Headers = {
  ...location('The generation: follow it there'),
  'Preference-Applied': header(`wait=N when Prefer: wait=N was sent, N the wait applied (at most ${MAX_PREFER_WAIT_SECONDS})`),
  ...idempotentReplayed,
  ...rateLimitHeaders,
};

const fileHeaders: Headers = {
  ETag: header('The validator to send back in If-None-Match, If-Match or If-Range'),
  'Last-Modified': header('When the file was written (HTTP date)'),
  'Cache-Control': header('public, max-age=<how long records are kept, at most a year>, immutable: a file never changes'),
};
const acceptRanges = { 'Accept-Ranges': header('bytes; none where the file store reads no ranges (single byte ranges are answered 206)') };
/** Files are images: originals as the provider made them, thumbnails in the configured format. */
const imageContent = Object.fromEntries([...new Set(Object.values(CONTENT_TYPES))].map((type) => [type, { schema: { type: 'string', format: 'binary' } }]));

/** A list's schema whose `data` items are the component `name`, by reference. */
const listOf = (list: z.ZodType, name: string) => {
  const generated = responseSchema(list) as { properties: Record<string, object> };
  return { ...generated, properties: { ...generated.properties, data: { ...generated.properties.data, items: { $ref: `#/components/schemas/${name}` } } } };
};

export function buildOpenApi(publicBaseUrl: string) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'imagegen',
      version: '0.1.0',
      description: `Image generation as jobs: submit { topic, style, size }, follow progress, fetch the image and its thumbnails.\n\n${WEBHOOK_VERIFICATION_MD}`,
    },
    servers: [{ url: publicBaseUrl }],
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' }, admin: { type: 'http', scheme: 'basic' } },
      schemas: {
        Problem: responseSchema(problemSchema),
        Generation: responseSchema(publicGenerationSchema),
        GenerationList: responseSchema(generationListSchema),
        CreateGeneration: schema(createGenerationSchema),
        SeedRequest: schema(generationRequestSchema),
        SeedResult: responseSchema(seedResponseSchema),
        SeedAccepted: responseSchema(seedAcceptedSchema),
        DeliveryAttempt: responseSchema(deliveryAttemptSchema),
        DeliveryList: listOf(deliveryListSchema, 'DeliveryAttempt'),
        Redelivery: responseSchema(redeliverySchema),
        BatchRedeliver: schema(batchRedeliverSchema),
        WebhookSecret: responseSchema(webhookSecretSchema),
        WebhookRecover: schema(webhookRecoverSchema),
        WebhookRecovery: responseSchema(webhookRecoverySchema),
        FailedDeliveryList: responseSchema(failedDeliveryListSchema),
        // items are checked one by one (so every bad item is named): described here as each must be
        CreateBatch: schema(batchEnvelopeSchema.extend({ items: z.array(batchItemSchema).min(1).max(MAX_BATCH_ITEMS) })),
        Batch: responseSchema(publicBatchSchema),
        BatchList: responseSchema(batchListSchema),
        BatchResultLine: responseSchema(batchResultLineSchema),
        Usage: responseSchema(usageSchema),
        CreatedApiKey: responseSchema(createdApiKeySchema),
        ApiKeyList: responseSchema(apiKeyListSchema),
        Health: responseSchema(healthSchema),
        Readiness: responseSchema(readinessSchema),
      },
    },
    security: [{ apiKey: [] }],
    webhooks: {
      'generation.started': webhookEvent('generation.started', 'The generation began (once, on its first attempt)'),
      'generation.progress': webhookEvent('generation.progress', 'The generation entered a new stage (at most one per 500 ms)'),
      'generation.completed': webhookEvent('generation.completed', 'The generation completed: data.result has the URLs'),
      'generation.failed': webhookEvent('generation.failed', 'The generation failed: data.error says why'),
      'generation.cancelled': webhookEvent('generation.cancelled', 'The generation was cancelled'),
      'batch.completed': webhookEvent('batch.completed', 'Every item of the batch ended (to the batch’s webhook)', 'Batch'),
    },
    paths: withCommonAnswers({
      '/api/odin/v3/tools/image-generator': {
        post: {
          summary: 'Generate and wait (seed-compatible)',
          description: 'Enqueues a generation and waits for it. 200 { downloadUrl }; 502 if it failed; 202 { id, status, statusUrl } past the wait limit.',
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/SeedRequest' } } } },
          responses: {
            '200': { description: 'Completed', headers: rateLimitHeaders, ...json('SeedResult') },
            '202': { description: 'Still running', headers: { ...location('The generation (statusUrl): follow it there'), ...retryAfter('asking it again'), ...rateLimitHeaders }, ...json('SeedAccepted') },
            ...errors(400, 413, 415, 429, 502),
          },
        },
      },
      '/v1/generations': {
        post: {
          summary: 'Create a generation',
          description: `Answers 202 with the generation. With \`Prefer: wait=N\` (N ≤ ${MAX_PREFER_WAIT_SECONDS}) answers 200 if it finished within N seconds.`,
          parameters: [{ name: 'Prefer', in: 'header', schema: { type: 'string', example: 'wait=30' } }, idempotencyKeyParameter],
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/CreateGeneration' } } } },
          responses: { '200': { description: 'Finished within the wait', headers: generationCreated, ...genRef }, '202': { description: 'Accepted', headers: generationCreated, ...genRef }, ...errors(400, 409, 413, 415, 429) },
        },
        get: {
          summary: 'List your generations, newest first',
          description: 'Query: status, limit (1..100), cursor (nextCursor of the previous page).',
          parameters: queryParameters(generationListQuery),
          responses: { '200': { description: 'A page', ...json('GenerationList') }, ...errors(400) },
        },
      },
      '/v1/generations/{id}': {
        get: { summary: 'Get a generation', description: 'Status, stage, progress, result URLs or error.', responses: { '200': { description: 'The generation', ...genRef }, ...errors(404) } },
        delete: { summary: 'Cancel a generation', description: 'Queued ones stop at once, active ones at the next stage boundary. 409 once terminal.', responses: { '200': { description: 'Cancelled', ...genRef }, ...errors(404), '409': problem(409, { 'Retry-After': header('Seconds to wait, when its batch is still being accepted', seconds) }) } },
      },
      '/v1/generations/{id}/events': {
        get: {
          summary: 'Stream state changes',
          description: 'text/event-stream of the generation until it ends. The last event (completed, failed or cancelled) has the id `end`; reconnecting with it as Last-Event-ID is answered 204, which stops an EventSource.',
          parameters: [{ name: 'Last-Event-ID', in: 'header', description: '`end` once the end was told; an id this stream gave out, and the stream starts with the state as it is now, its ids going on from that one; any other value is ignored.', schema: { type: 'string', example: 'end' } }],
          responses: { '200': { description: 'Event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, '204': { description: 'The end was told already' }, ...errors(404) },
        },
      },
      '/v1/generations/{id}/deliveries': {
        get: {
          summary: 'Webhook delivery attempts',
          description: 'Every attempt of every webhook delivery of the generation, oldest first (a delivery not tried yet, or redelivered and not tried since, shows as attempt 0, pending).',
          responses: { '200': { description: 'A list', ...json('DeliveryList') }, ...errors(404) },
        },
      },
      '/v1/generations/{id}/deliveries/{deliveryId}/redeliver': {
        post: {
          summary: 'Send a delivery again',
          description: 'A new run of the delivery: the same webhook-id and body bytes, freshly signed, with a fresh retry schedule. It takes no options: no body, or `{}`.',
          responses: { '202': { description: 'Queued', ...json('Redelivery') }, ...errors(400, 404, 415) },
        },
      },
      '/v1/batches': {
        post: {
          summary: 'Create a batch',
          description:
            '1 to 50,000 items, as JSON ({ items, defaults?, webhook?, metadata? }), NDJSON (one item per line) or CSV (header topic,style,size). One invalid item rejects the whole batch (400, every bad item listed, paths starting with its index) and nothing is enqueued. Every item is an ordinary generation with batchId set.',
          parameters: [idempotencyKeyParameter],
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/CreateBatch' } },
              'application/x-ndjson': { schema: { type: 'string', description: 'One item ({ topic, style?, size?, metadata? }) per line' } },
              'text/csv': { schema: { type: 'string', description: 'Header topic,style,size; one item per row' } },
            },
          },
          responses: {
            '202': { description: 'Accepted', headers: { ...location('The batch: follow it there'), ...idempotentReplayed, ...rateLimitHeaders }, ...json('Batch') },
            ...errors(400, 413, 415, 429),
            '409': problem(409, { 'Retry-After': header('Seconds to wait, when a batch with this Idempotency-Key is still being accepted', seconds) }),
          },
        },
        get: { summary: 'List your batches, newest first', description: 'Query: limit (1..100), cursor (nextCursor of the previous page).', parameters: queryParameters(batchListQuery), responses: { '200': { description: 'A page', ...json('BatchList') }, ...errors(400) } },
      },
      '/v1/batches/{id}': {
        get: { summary: 'Get a batch', description: 'Live counts and progress; status becomes completed when every item has ended.', responses: { '200': { description: 'The batch', ...json('Batch') }, ...errors(404) } },
        delete: { summary: 'Cancel a batch', description: 'Cancels every item not yet finished; finished ones stay as they are. 409 once every item has finished.', responses: { '200': { description: 'The batch', ...json('Batch') }, ...errors(404, 409) } },
      },
      '/v1/batches/{id}/results': {
        get: {
          summary: 'Results of every item',
          description: 'One line per item in submission order, each a BatchResultLine: { index, id, status, result?, error? }.',
          responses: {
            '200': {
              description: 'NDJSON',
              // OpenAPI 3.1 has no schema per line (3.2's itemSchema); its media type registry models sequential JSON as an array of the lines
              content: { 'application/x-ndjson': { schema: { type: 'array', items: { $ref: '#/components/schemas/BatchResultLine' }, description: 'One BatchResultLine per line (newline-delimited JSON, not an array)' } } },
            },
            ...errors(404),
          },
        },
      },
      '/v1/batches/{id}/events': {
        get: {
          summary: 'Stream count changes and item completions',
          description:
            'text/event-stream until the batch ends: batch.counts, item ({ index, id, status }) for each item that ends, in the order they end, and batch.completed. Each event id marks how far the client has been told; reconnecting with it as Last-Event-ID tells every item that ended meanwhile, none twice (0-0: every item from the first). Without it the stream starts at the time of connecting. batch.completed has the id `end`; reconnecting with it is answered 204, which stops an EventSource.',
          parameters: [{ name: 'Last-Event-ID', in: 'header', description: 'An event id this stream gave out; any other value is ignored.', schema: { type: 'string', example: '1796451584554-0' } }],
          responses: { '200': { description: 'Event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, '204': { description: 'The end was told already' }, ...errors(404) },
        },
      },
      '/v1/batches/{id}/deliveries': {
        get: {
          summary: 'Webhook delivery attempts of the batch',
          description: "Every attempt of the batch's own deliveries (batch.completed), oldest first; each item's deliveries are listed under its generation.",
          responses: { '200': { description: 'A list', ...json('DeliveryList') }, ...errors(404) },
        },
      },
      '/v1/batches/{id}/deliveries/redeliver': {
        post: {
          summary: "Send again every failed delivery of the batch and its items",
          description:
            "For an endpoint that was down: every delivery of the batch's items, then the batch's own, now in one of `states` (default failed and exhausted) starts a new run, as a single redeliver does: the same webhook-id and bytes, freshly signed, a fresh schedule. Runs in the background as a recovery: 202 with it, its URL in Location (`GET /v1/webhooks/recoveries/{id}` follows it). One recovery runs per tenant at a time: asking again for the same one while it runs answers it, another gets a 409 naming it. The body is optional.",
          requestBody: { required: false, content: { 'application/json': { schema: { $ref: '#/components/schemas/BatchRedeliver' } } } },
          responses: { '202': recoveryStarted, ...errors(400, 404, 415), '409': recoveryRunning },
        },
      },
      '/v1/batches/{id}/deliveries/{deliveryId}/redeliver': {
        post: {
          summary: 'Send a batch delivery again',
          description: 'A new run of the delivery: the same webhook-id and body bytes, freshly signed, with a fresh retry schedule. It takes no options: no body, or `{}`.',
          responses: { '202': { description: 'Queued', ...json('Redelivery') }, ...errors(400, 404, 415) },
        },
      },
      '/v1/batches/{id}/archive': {
        get: {
          summary: 'Every completed original, zipped',
          description: 'application/zip of the completed originals plus results.jsonl, streamed.',
          responses: { '200': { description: 'Zip', content: { 'application/zip': { schema: { type: 'string', format: 'binary' } } } }, ...errors(404) },
        },
      },
      '/v1/usage': {
        get: { summary: 'Your usage by day', description: `Query: days (1..${MAX_USAGE_RETENTION_DAYS}, default 30). Generations by final status, upstream calls and bytes stored, per UTC day, for as far back as usage is kept.`, parameters: queryParameters(usageQuerySchema), responses: { '200': { description: 'Usage', ...json('Usage') }, ...errors(400) } },
      },
      '/admin/tenants/{tenant}/keys': {
        post: { summary: 'Make an API key for a tenant', description: 'Operators only. The key is shown once.', security: [{ admin: [] }], responses: { '201': { description: 'The key', ...json('CreatedApiKey') }, ...errors(400, 409, 415) } },
        get: { summary: "A tenant's API keys", description: 'Operators only. Ids, prefixes and creation times; never the keys.', security: [{ admin: [] }], responses: { '200': { description: 'The keys', ...json('ApiKeyList') }, ...errors(400) } },
      },
      '/admin/tenants/{tenant}/keys/{id}': {
        delete: { summary: 'Revoke an API key', description: 'Operators only. Refused everywhere from the next request on.', security: [{ admin: [] }], responses: { '204': { description: 'Revoked' }, ...errors(400, 404) } },
      },
      '/admin/tenants/{tenant}/usage': {
        get: { summary: "A tenant's usage by day", description: 'Operators only. As GET /v1/usage, for any tenant.', security: [{ admin: [] }], responses: { '200': { description: 'Usage', ...json('Usage') }, ...errors(400) } },
      },
      '/v1/webhooks/secret': {
        get: { summary: 'Your webhook signing secret', description: '{ secret: "whsec_…" }: verify deliveries with it (standardwebhooks).', responses: { '200': { description: 'The secret', ...json('WebhookSecret') } } },
      },
      '/v1/webhooks/secret/rotate': {
        post: {
          summary: 'Rotate your webhook signing secret',
          description: '{ secret }: the new secret. For 24 h the previous one signs too (two signatures in webhook-signature), so receivers can switch without missing a delivery. It takes no options: no body, or `{}`.',
          responses: { '200': { description: 'The new secret', ...json('WebhookSecret') }, ...errors(400, 415) },
        },
      },
      '/v1/webhooks/deliveries': {
        get: {
          summary: 'Your deliveries that did not arrive',
          description:
            'Every delivery of yours (generations and batches) now failed (410) or exhausted, newest ending first, with what the endpoint last answered. Query: state (failed | exhausted), limit (1..100, default 20), cursor (nextCursor of the page before). A delivery that has arrived since, or is under way again, is left out, so a page can come back short: follow nextCursor until it is null.',
          parameters: queryParameters(failedDeliveriesQuery),
          responses: { '200': { description: 'A page', ...json('FailedDeliveryList') }, ...errors(400) },
        },
      },
      '/v1/webhooks/recover': {
        post: {
          summary: 'Send again every delivery that did not arrive in a time window',
          description:
            'After an endpoint outage: every delivery of yours (generations and batches) that ended failed (410) or exhausted (the schedule ran out) between `since` and `until` (default now) starts a new run, as a single redeliver does: the same webhook-id and bytes, freshly signed, a fresh schedule. Runs in the background: 202 with the recovery, its URL in Location. A delivery counts by its latest ending. One recovery runs per tenant at a time: asking again for the same one (same since, states and, if given, until) while it runs answers it, another gets a 409 naming it. Ended deliveries are findable as long as their record is kept (at most the newest 200,000 per tenant).',
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/WebhookRecover' } } } },
          responses: { '202': recoveryStarted, ...errors(400, 415), '409': recoveryRunning },
        },
      },
      '/v1/webhooks/recoveries/{id}': {
        get: { summary: 'A recovery and how far it got', description: 'Running, completed or failed, with deliveries looked at and sent again. Readable for 24 h after it ends.', responses: { '200': { description: 'The recovery', ...json('WebhookRecovery') }, ...errors(404) } },
      },
      '/files/{token}/{name}': {
        get: {
          summary: 'Result file',
          description: 'Image bytes, public by unguessable URL. Answers HEAD, conditional requests (ETag, Last-Modified) and single byte ranges.',
          security: [],
          responses: {
            '200': { description: 'The image', headers: { ...fileHeaders, ...acceptRanges }, content: imageContent },
            '206': { description: 'The requested byte range', headers: { ...fileHeaders, ...acceptRanges, 'Content-Range': header('bytes <first>-<last>/<size of the file>', { type: 'string' }, true) }, content: imageContent },
            '304': { description: 'Not modified since the copy the client holds', headers: fileHeaders },
            ...errors(404, 405, 412, 416, 503),
          },
        },
      },
      '/admin/queues': { get: { summary: 'Bull Board dashboard', description: 'Operators only (basic auth).', security: [{ admin: [] }], responses: { '200': { description: 'Dashboard' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', description: 'Prometheus text of this API process. Operators only (basic auth).', security: [{ admin: [] }], responses: { '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      '/openapi.json': { get: { summary: 'This document', description: 'OpenAPI 3.1, generated from the zod schemas the API validates and answers with.', security: [], responses: { '200': { description: 'The document' } } } },
      '/docs': { get: { summary: 'API reference', description: 'This document, rendered.', security: [], responses: { '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } } } },
      '/': { get: { summary: 'Gallery', description: 'Submit a generation, watch it, see recent ones as thumbnails.', security: [], responses: { '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } } } },
      '/healthz': { get: { summary: 'Liveness', description: '200 while the process lives.', security: [], responses: { '200': { description: 'Alive', ...json('Health') } } } },
      '/readyz': { get: { summary: 'Readiness', description: '200 when Redis answers, else 503.', security: [], responses: { '200': { description: 'Ready', ...json('Readiness') }, ...errors(503) } } },
    }),
  };
}
