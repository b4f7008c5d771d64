// The monitoring kit in monitoring/ and the compose `monitoring` profile: every metric the
// dashboard and the alert rules name is one the processes really export.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { createMetrics } from '@imagegen/shared';

const ROOT = path.resolve(__dirname, '..');
const read = (rel: string) => readFileSync(path.join(ROOT, rel), 'utf8');

/** Names a scrape can show: every registered metric, histograms with their _bucket/_sum/_count series. */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const service of ['api', 'worker'] as const) {
    for (const m of await createMetrics(service).registry.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${m.name}${s}`);
      if (String(m.type) === 'summary') for (const s of ['_sum', '_count']) names.add(`${m.name}${s}`);
    }
  }
  return names;
}

const PROMQL_WORDS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'predict_linear', 'histogram_quantile', 'absent', 'absent_over_time',
  'abs', 'ceil', 'floor', 'round', 'clamp_min', 'clamp_max', 'label_replace', 'label_join', 'vector', 'scalar', 'time',
  'avg_over_time', 'max_over_time', 'min_over_time', 'sum_over_time', 'count_over_time', 'changes', 'resets', 'sort', 'sort_desc', 'inf', 'nan',
]);

/** Metric names in a PromQL expression: identifiers outside label matchers, grouping clauses and strings that are not functions or keywords. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  const out = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const next = stripped.slice((m.index ?? 0) + word.length).trimStart();
    if (PROMQL_WORDS.has(word.toLowerCase()) || next.startsWith('(')) continue;
    // a number's exponent or a duration (5m) is not a name
    if (/^\d/.test(stripped.slice((m.index ?? 1) - 1, m.index))) continue;
    out.add(word);
  }
  return [...out];
}

function dashboardExprs(json: string): string[] {
  const dash = JSON.parse(json) as { panels: { targets?: { expr?: string }[] }[] };
  return dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? '')).filter(Boolean);
}

function ruleExprs(yamlText: string): string[] {
  const doc = parse(yamlText) as { groups: { rules: { expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => String(r.expr)));
}

function checkNames(exprs: string[], exported: Set<string>): void {
  if (exprs.length === 0) throw new Error('no queries found');
  for (const expr of exprs) {
    const names = metricNames(expr);
    if (names.length === 0) throw new Error(`no metric in ${expr}`);
    const unknown = names.filter((n) => !exported.has(n));
    if (unknown.length > 0) throw new Error(`${unknown.join(', ')} in "${expr}" is not exported`);
  }
}

describe('monitoring kit', () => {
  let exported: Set<string>;
  beforeAll(async () => {
    exported = await exportedNames();
  });

  it('reads metric names out of PromQL', () => {
    expect(metricNames('histogram_quantile(0.95, sum by (le, stage) (rate(imagegen_stage_duration_seconds_bucket{stage!="x"}[5m])))')).toEqual(['imagegen_stage_duration_seconds_bucket']);
    expect(metricNames('max(a_metric{q="generate"}) == 0 or absent(b_metric) > 1e3')).toEqual(['a_metric', 'b_metric']);
  });

  it('every dashboard query names exported metrics, and covers the asked-for views', () => {
    const exprs = dashboardExprs(read('monitoring/grafana/dashboards/imagegen.json'));
    checkNames(exprs, exported);
    const all = exprs.join('\n');
    for (const m of ['imagegen_queue_jobs', 'imagegen_job_duration_seconds_count', 'imagegen_stage_duration_seconds_bucket', 'imagegen_upstream_requests_total', 'imagegen_webhook_deliveries_total']) expect(all).toContain(m);
  });

  it('every alert rule names exported metrics', () => {
    const exprs = ruleExprs(read('monitoring/prometheus/alerts.yml'));
    checkNames(exprs, exported);
    expect(exprs).toHaveLength(5);
  });

  it('queries of what every API process reads from Redis take one copy (max, or ask whether it is absent), not the sum over processes', () => {
    const exprs = [...ruleExprs(read('monitoring/prometheus/alerts.yml')), ...dashboardExprs(read('monitoring/grafana/dashboards/imagegen.json'))];
    for (const expr of exprs) {
      for (const name of ['imagegen_queue_jobs', 'imagegen_queue_workers', 'imagegen_webhook_outbox_events', 'imagegen_webhook_outbox_oldest_seconds']) {
        const uses = expr.split(name).length - 1;
        const once = [...expr.matchAll(new RegExp(`(?:max(?: by \\([^)]*\\))?|absent) ?\\((?:deriv\\()?${name}\\b`, 'g'))].length;
        // before: the growing-queue alert summed the API processes' copies, so it fired at 100 / (number of APIs)
        expect({ expr, name, uses: once }).toEqual({ expr, name, uses });
      }
    }
  });

  it('catches a query on a metric nobody exports', () => {
    expect(() => checkNames(['sum(rate(imagegen_not_a_metric_total[5m]))'], exported)).toThrow(/imagegen_not_a_metric_total/);
    expect(() => checkNames(['rate(imagegen_upstream_requests[5m])'], exported)).toThrow(/not exported/);
  });

  it('the compose monitoring profile runs Prometheus on these rules and Grafana on this dashboard', () => {
    const compose = parse(read('docker-compose.yml'), { merge: true }) as Record<string, any>;
    const prom = compose.services.prometheus;
    const grafana = compose.services.grafana;
    expect(prom.profiles).toEqual(['monitoring']);
    expect(grafana.profiles).toEqual(['monitoring']);
    expect(compose.services.api.profiles).toBeUndefined();
    const mounts = (svc: any) => (svc.volumes as string[]).map((v) => v.split(':')[0]!).filter((s) => s.startsWith('./'));
    for (const m of [...mounts(prom), ...mounts(grafana)]) expect(existsSync(path.join(ROOT, m))).toBe(true);
    expect(mounts(prom)).toEqual(expect.arrayContaining(['./monitoring/prometheus/prometheus.yml', './monitoring/prometheus/alerts.yml']));
    expect(mounts(grafana)).toEqual(expect.arrayContaining(['./monitoring/grafana/dashboards']));
    const config = parse(read('monitoring/prometheus/prometheus.yml')) as { scrape_configs: { job_name: string; dns_sd_configs?: { names: string[]; port: number }[]; static_configs?: { targets: string[] }[] }[] };
    const worker = config.scrape_configs.find((j) => j.job_name === 'imagegen-worker');
    // every worker replica: the service name resolves to all of them, on the METRICS_PORT compose gives them
    expect(worker?.dns_sd_configs?.[0]).toMatchObject({ names: ['worker'], port: Number(compose.services.worker.environment.METRICS_PORT) });
    expect(config.scrape_configs.find((j) => j.job_name === 'imagegen-api')?.static_configs?.[0]?.targets).toEqual(['api:3000']);
  });
});
