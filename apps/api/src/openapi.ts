import { z } from 'zod';
import { createGenerationSchema, generationRequestSchema, publicGenerationSchema } from '@imagegen/shared';

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
      schemas: { Problem: problem, Generation: responseSchema(publicGenerationSchema), CreateGeneration: schema(createGenerationSchema), SeedRequest: schema(generationRequestSchema) },
    },
    security: [{ apiKey: [] }],
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
      '/files/{token}/{name}': {
        get: { summary: 'Result file', description: 'Image bytes, public by unguessable URL.', security: [], responses: { '200': { description: 'Image' }, ...errors(404) } },
      },
      '/admin/queues': { get: { summary: 'Bull Board dashboard', description: 'Operators only (basic auth).', security: [{ admin: [] }], responses: { '200': { description: 'Dashboard' }, ...errors(401) } } },
      '/healthz': { get: { summary: 'Liveness', description: '200 while the process lives.', security: [], responses: { '200': { description: 'Alive' } } } },
      '/readyz': { get: { summary: 'Readiness', description: '200 when Redis answers, else 503.', security: [], responses: { '200': { description: 'Ready' }, '503': { description: 'Redis down' } } } },
    },
  };
}
