import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { OutboxBacklog } from '../webhooks/outbox';
import { QUEUES } from '../catalog';

/** Job states counted per queue (BullMQ's own names). */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed', 'paused'] as const;

/** The webhook outbox's backlog, read from Redis at scrape time (outboxBacklog). */
export type OutboxReader = () => Promise<OutboxBacklog>;

export interface CountableQueue {
  name: string;
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
  getWorkersCount(): Promise<number>;
}

const SECONDS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * Longest a scrape waits for a Redis read. Queue connections wait for Redis without end (BullMQ
 * needs them to), so an unbounded read would hang the whole scrape while Redis is away: exactly
 * when an operator needs the rest of it.
 */
export const SCRAPE_REDIS_DEADLINE_MS = 2_000;

/** The read's value, or null when it fails or has not answered by the deadline (its series are then left out: unknown). */
function withinDeadline<T>(read: () => Promise<T>): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), SCRAPE_REDIS_DEADLINE_MS).unref()));
  const value = read().catch(() => null);
  return Promise.race([value, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Every metric the project exports, defined once. Each process makes its own registry (its
 * series are its own: every API and worker replica is scraped apart). Labels never carry ids,
 * tenants or URLs: their values are bounded sets.
 */
export function createMetrics(service: 'api' | 'worker') {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  /** Queues whose depth is read from Redis at scrape time, so every scrape sees the shared truth. */
  const queues: CountableQueue[] = [];
  const outbox: { read?: OutboxReader } = {};
  // both outbox gauges of one scrape share one read
  let outboxRead: { at: number; backlog: Promise<OutboxBacklog | null> } | null = null;
  const readOutbox = () => {
    if (!outbox.read) return null;
    const read = outbox.read;
    if (!outboxRead || Date.now() - outboxRead.at > 1000) outboxRead = { at: Date.now(), backlog: withinDeadline(read) };
    return outboxRead.backlog;
  };
  return {
    registry,
    queues,
    outbox,
    queueJobs: new Gauge({
      name: 'imagegen_queue_jobs',
      help: 'Jobs in each queue by state',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        this.reset();
        // while Redis is away the series are left out (unknown), and the rest of the scrape still answers
        const counts = (await withinDeadline(() => Promise.all(queues.map((q) => q.getJobCounts(...QUEUE_STATES).then((c) => [q.name, c] as const))))) ?? [];
        for (const [queue, c] of counts) for (const state of QUEUE_STATES) this.set({ queue, state }, c[state] ?? 0);
      },
    }),
    queueWorkers: new Gauge({
      name: 'imagegen_queue_workers',
      help: 'Workers connected to each queue',
      labelNames: ['queue'],
      registers,
      async collect() {
        this.reset();
        const counts = (await withinDeadline(() => Promise.all(queues.map((q) => q.getWorkersCount().then((n) => [q.name, n] as const))))) ?? [];
        for (const [queue, n] of counts) this.set({ queue }, n);
      },
    }),
    webhookOutboxEvents: new Gauge({
      name: 'imagegen_webhook_outbox_events',
      help: 'Webhook events in the outbox: waiting (no dispatcher has read them) and dispatching (read, not yet delivered or handed to a job)',
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        const backlog = await readOutbox();
        if (!backlog) return;
        this.set({ state: 'waiting' }, backlog.waiting);
        this.set({ state: 'dispatching' }, backlog.dispatching);
      },
    }),
    webhookOutboxOldest: new Gauge({
      name: 'imagegen_webhook_outbox_oldest_seconds',
      help: 'How long the oldest event in the webhook outbox has waited (0 when it is empty): grows while no dispatcher runs',
      // labelled so that, unread (Redis away, or a process that does not read the outbox), the
      // series is left out: an unlabelled gauge always shows a value, 0 once reset
      labelNames: ['queue'],
      registers,
      async collect() {
        this.reset();
        const backlog = await readOutbox();
        if (backlog) this.set({ queue: QUEUES.webhooks }, backlog.oldestAgeSeconds);
      },
    }),
    jobDuration: new Histogram({ name: 'imagegen_job_duration_seconds', help: 'Duration of one job attempt, by queue and outcome', labelNames: ['queue', 'outcome'], buckets: SECONDS_BUCKETS, registers }),
    stageDuration: new Histogram({ name: 'imagegen_stage_duration_seconds', help: 'Time a generation attempt spent in each stage', labelNames: ['stage'], buckets: SECONDS_BUCKETS, registers }),
    upstreamDuration: new Histogram({ name: 'imagegen_upstream_duration_seconds', help: 'Latency of upstream generator calls, by provider and outcome', labelNames: ['provider', 'outcome'], buckets: SECONDS_BUCKETS, registers }),
    upstreamRequests: new Counter({ name: 'imagegen_upstream_requests_total', help: 'Upstream generator calls by provider and outcome (ok or the error code)', labelNames: ['provider', 'outcome'], registers }),
    downloadBytes: new Counter({ name: 'imagegen_download_bytes_total', help: 'Bytes of generated images downloaded from the upstream', registers }),
    thumbnailDuration: new Histogram({ name: 'imagegen_thumbnail_duration_seconds', help: 'Time to make one generation\'s thumbnails and placeholder', buckets: SECONDS_BUCKETS, registers }),
    webhookDeliveries: new Counter({ name: 'imagegen_webhook_deliveries_total', help: 'Webhook delivery attempts by the delivery state after them', labelNames: ['outcome'], registers }),
    webhookDuration: new Histogram({ name: 'imagegen_webhook_delivery_duration_seconds', help: 'Latency of webhook delivery attempts', labelNames: ['outcome'], buckets: SECONDS_BUCKETS, registers }),
    httpRequests: new Counter({ name: 'imagegen_http_requests_total', help: 'API requests by method, route template and status', labelNames: ['method', 'route', 'status'], registers }),
    httpDuration: new Histogram({ name: 'imagegen_http_request_duration_seconds', help: 'API request latency by method, route template and status', labelNames: ['method', 'route', 'status'], buckets: SECONDS_BUCKETS, registers }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Lets this process's scrapes report the webhook outbox's backlog. */
export function observeOutbox(metrics: Metrics, read: OutboxReader): void {
  metrics.outbox.read = read;
}

/** Lets this process's scrapes report the depth of these queues. */
export function observeQueues(metrics: Metrics, queues: CountableQueue[]): void {
  metrics.queues.push(...queues);
}
