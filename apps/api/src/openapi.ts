import { z } from 'zod';
import { createGenerationSchema, DELIVERY_STATES, generationRequestSchema, publicGenerationSchema, WEBHOOK_EVENTS } from '@imagegen/shared';

/** Request bodies are described as clients may send them, responses as the API answers. */
const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
const responseSchema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'output', unrepresentable: 'any' });

const problem = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
  },
};

const deliveryAttempt = {
  type: 'object',
  required: ['id', 'event', 'webhookId', 'attempt', 'at', 'durationMs', 'state'],
  properties: {
    id: { type: 'string', description: 'Delivery id (one per event and endpoint)' },
    event: { enum: [...WEBHOOK_EVENTS] },
    webhookId: { type: 'string', description: 'The webhook-id header: the same for every attempt and redelivery' },
    attempt: { type: 'integer', description: '1, 2, ...; 0 for a delivery not tried yet' },
    at: { type: 'string', format: 'date-time' },
    status: { type: 'integer', description: 'HTTP status the endpoint answered, if it answered' },
    error: { type: 'string' },
    durationMs: { type: 'integer' },
    nextAttemptAt: { type: 'string', format: 'date-time' },
    state: { enum: [...DELIVERY_STATES], description: 'The delivery after this attempt' },
  },
};

const webhookSignatureHeaders = {
  'webhook-id': { schema: { type: 'string' }, description: 'msg_…; the same on every retry: use it to deduplicate' },
  'webhook-timestamp': { schema: { type: 'string' }, description: 'Unix seconds of this attempt' },
  'webhook-signature': { schema: { type: 'string' }, description: 'v1,<base64 HMAC-SHA256 of "id.timestamp.body">, space-separated when two secrets sign (rotation overlap)' },
};

const webhookEvent = (type: string, summary: string) => ({
  post: {
    summary,
    description: 'Signed per Standard Webhooks with the secret from GET /v1/webhooks/secret. Answer 2xx within 10 s; anything else is retried (0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h with jitter); 410 stops.',
    parameters: Object.entries(webhookSignatureHeaders).map(([name, h]) => ({ name, in: 'header', required: true, ...h })),
    requestBody: {
      content: {
        'application/json': {
          schema: { type: 'object', required: ['type', 'timestamp', 'data'], properties: { type: { const: type }, timestamp: { type: 'string', format: 'date-time' }, data: { $ref: '#/components/schemas/Generation' } } },
        },
      },
    },
    responses: { '200': { description: 'Received' }, '410': { description: 'Gone: stop delivering this one' } },
  },
});

const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [String(c), { description: 'Problem', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } }]));

const genRef = { content: { 'application/json': { schema: { $ref: '#/components/schemas/Generation' } } } };

export function buildOpenApi(publicBaseUrl: string) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'imagegen',
      version: '0.1.0',
      description: 'Image generation as jobs: submit { topic, style, size }, follow progress, fetch the image and its thumbnails.',
    },
    servers: [{ url: publicBaseUrl }],
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' }, admin: { type: 'http', scheme: 'basic' } },
      schemas: { Problem: problem, Generation: responseSchema(publicGenerationSchema), CreateGeneration: schema(createGenerationSchema), SeedRequest: schema(generationRequestSchema), DeliveryAttempt: deliveryAttempt },
    },
    security: [{ apiKey: [] }],
    webhooks: {
      'generation.started': webhookEvent('generation.started', 'The generation began (once, on its first attempt)'),
      'generation.progress': webhookEvent('generation.progress', 'The generation entered a new stage (at most one per 500 ms)'),
      'generation.completed': webhookEvent('generation.completed', 'The generation completed: data.result has the URLs'),
      'generation.failed': webhookEvent('generation.failed', 'The generation failed: data.error says why'),
      'generation.cancelled': webhookEvent('generation.cancelled', 'The generation was cancelled'),
    },
    paths: {
      '/api/odin/v3/tools/image-generator': {
        post: {
          summary: 'Generate and wait (seed-compatible)',
          description: 'Enqueues a generation and waits for it. 200 { downloadUrl }; 502 if it failed; 202 { id, status, statusUrl } past the wait limit.',
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/SeedRequest' } } } },
          responses: { '200': { description: 'Completed' }, '202': { description: 'Still running' }, ...errors(400, 401, 413, 415, 429, 502, 503) },
        },
      },
      '/v1/generations': {
        post: {
          summary: 'Create a generation',
          description: 'Answers 202 with the generation. With `Prefer: wait=N` (N ≤ 60) answers 200 if it finished within N seconds.',
          parameters: [
            { name: 'Prefer', in: 'header', schema: { type: 'string', example: 'wait=30' } },
            { name: 'Idempotency-Key', in: 'header', schema: { type: 'string' } },
          ],
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/CreateGeneration' } } } },
          responses: { '200': { description: 'Finished within the wait', ...genRef }, '202': { description: 'Accepted', ...genRef }, ...errors(400, 401, 409, 413, 415, 429, 503) },
        },
        get: {
          summary: 'List your generations, newest first',
          description: 'Query: status, limit (1..100), cursor (nextCursor of the previous page).',
          responses: { '200': { description: 'A page' }, ...errors(400, 401, 503) },
        },
      },
      '/v1/generations/{id}': {
        get: { summary: 'Get a generation', description: 'Status, stage, progress, result URLs or error.', responses: { '200': { description: 'The generation', ...genRef }, ...errors(401, 404) } },
        delete: { summary: 'Cancel a generation', description: 'Queued ones stop at once, active ones at the next stage boundary. 409 once terminal.', responses: { '200': { description: 'Cancelled', ...genRef }, ...errors(401, 404, 409) } },
      },
      '/v1/generations/{id}/events': {
        get: { summary: 'Stream state changes', description: 'text/event-stream of the generation until it ends.', responses: { '200': { description: 'Event stream' }, ...errors(401, 404) } },
      },
      '/v1/generations/{id}/deliveries': {
        get: {
          summary: 'Webhook delivery attempts',
          description: 'Every attempt of every webhook delivery of the generation, oldest first (a delivery not tried yet shows as attempt 0, pending).',
          responses: { '200': { description: 'A list', content: { 'application/json': { schema: { type: 'object', properties: { object: { const: 'list' }, data: { type: 'array', items: { $ref: '#/components/schemas/DeliveryAttempt' } } } } } } }, ...errors(401, 404) },
        },
      },
      '/v1/generations/{id}/deliveries/{deliveryId}/redeliver': {
        post: {
          summary: 'Send a delivery again',
          description: 'A new run of the delivery: the same webhook-id and body bytes, freshly signed, with a fresh retry schedule.',
          responses: { '202': { description: 'Queued' }, ...errors(401, 404) },
        },
      },
      '/v1/webhooks/secret': {
        get: { summary: 'Your webhook signing secret', description: '{ secret: "whsec_…" }: verify deliveries with it (standardwebhooks).', responses: { '200': { description: 'The secret' }, ...errors(401) } },
      },
      '/v1/webhooks/secret/rotate': {
        post: {
          summary: 'Rotate your webhook signing secret',
          description: '{ secret }: the new secret. For 24 h the previous one signs too (two signatures in webhook-signature), so receivers can switch without missing a delivery.',
          responses: { '200': { description: 'The new secret' }, ...errors(401) },
        },
      },
      '/files/{token}/{name}': {
        get: { summary: 'Result file', description: 'Image bytes, public by unguessable URL.', security: [], responses: { '200': { description: 'Image' }, ...errors(404) } },
      },
      '/admin/queues': { get: { summary: 'Bull Board dashboard', description: 'Operators only (basic auth).', security: [{ admin: [] }], responses: { '200': { description: 'Dashboard' }, ...errors(401) } } },
      '/healthz': { get: { summary: 'Liveness', description: '200 while the process lives.', security: [], responses: { '200': { description: 'Alive' } } } },
      '/readyz': { get: { summary: 'Readiness', description: '200 when Redis answers, else 503.', security: [], responses: { '200': { description: 'Ready' }, '503': { description: 'Redis down' } } } },
    },
  };
}
