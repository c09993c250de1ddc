/**
 * The chart's monitoring files: the alert rules (charts/modelgate/rules/) pass `promtool check
 * rules` and `promtool test rules`; the Grafana dashboard (charts/modelgate/dashboards/) is valid
 * JSON with the expected variables and rows; every metric either names is one the gateway exports
 * (README's table and the families in src/; the live check, against a running proxy and
 * controller, is test/integration/observability/monitoring.test.ts); and the chart renders both
 * from those files when enabled, and neither by default.
 *
 * promtool comes from Debian's `prometheus` package: without it these tests skip locally and fail
 * in CI (CI set), as test/support/prometheus-server.ts does for prometheus.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import {
  ALL_OPTIONS,
  byKind,
  CHART_DIR,
  type K8sObject,
  kubernetesProblems,
  one,
  render,
} from './chart-helpers.ts';
import {
  alerts,
  DASHBOARD_FILE,
  dashboard,
  metricFamilies,
  monitoringExpressions,
  monitoringMetricNames,
  RULES_FILE,
  RULES_TEST_FILE,
  rules,
} from './monitoring-files.ts';

const SRC = join(import.meta.dirname, '..', '..', '..', 'src');
let promtoolFound: boolean | undefined;
function skipWithoutPromtool(): string | false {
  if (promtoolFound === undefined) {
    const r = spawnSync('promtool', ['--version'], { stdio: 'ignore' });
    promtoolFound = r.error === undefined && r.status === 0;
    if (!promtoolFound && process.env.CI) throw new Error('promtool is not on PATH: CI must install it');
  }
  return promtoolFound ? false : 'promtool not on PATH (apt-get install prometheus)';
}

function promtool(args: string[], cwd: string): string {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test('promtool check rules passes on the alert rules', { skip: skipWithoutPromtool() }, () => {
  const out = promtool(['check', 'rules', RULES_FILE], CHART_DIR);
  assert.match(out, new RegExp(`SUCCESS: ${alerts.length} rules found`));
});

test('promtool test rules passes: alerts fire and stay quiet as the cases expect', {
  skip: skipWithoutPromtool(),
}, () => {
  const out = promtool(['test', 'rules', RULES_TEST_FILE], join(CHART_DIR, 'rules'));
  assert.match(out, /SUCCESS/);
  // At least four alerts have cases, each with a firing and a quiet evaluation somewhere.
  const cases = parse(readFileSync(RULES_TEST_FILE, 'utf8')) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const checks = cases.tests.flatMap((t) => t.alert_rule_test ?? []);
  const firing = new Set(checks.filter((c) => c.exp_alerts.length > 0).map((c) => c.alertname));
  const quiet = new Set(checks.filter((c) => c.exp_alerts.length === 0).map((c) => c.alertname));
  assert.ok([...firing].filter((a) => quiet.has(a)).length >= 4, `firing ${[...firing]} quiet ${[...quiet]}`);
});

test('every alert has a for, a severity and a summary and description', () => {
  const names = alerts.map((a) => a.alert);
  assert.deepEqual(names.length, new Set(names).size, 'alert names are unique');
  assert.deepEqual(names.sort(), [
    'ModelGateCacheRedisErrors',
    'ModelGateEndpointsUnavailable',
    'ModelGateHighErrorRate',
    'ModelGateHighLatencyP99',
    'ModelGateInformerStale',
    'ModelGateNoLeader',
    'ModelGateProxiesNackingTables',
    'ModelGateProxyDisconnected',
    'ModelGateRateLimitRedisErrors',
    'ModelGateRolloutRolledBack',
  ]);
  for (const a of alerts) {
    assert.match(a.for ?? '', /^\d+[smh]$/, `${a.alert}: for`);
    assert.match(a.labels?.severity ?? '', /^(critical|warning)$/, `${a.alert}: severity`);
    assert.ok(a.annotations?.summary && a.annotations.description, `${a.alert}: annotations`);
  }
});

test('the dashboard: Grafana JSON with a Prometheus datasource variable, namespace and route, and every row', () => {
  assert.ok(dashboard.schemaVersion >= 36, 'schemaVersion');
  assert.equal(dashboard.uid, 'modelgate');
  const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  assert.equal(vars.get('datasource')?.type, 'datasource');
  assert.equal(vars.get('datasource')?.query, 'prometheus');
  assert.equal(vars.get('namespace')?.type, 'query');
  assert.equal(vars.get('route')?.type, 'query');
  const rows = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
  assert.deepEqual(rows, [
    'Traffic',
    'Errors',
    'Latency',
    'Rate limiting',
    'Cache',
    'Canary rollouts',
    'Proxy sync',
  ]);
  for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
    assert.ok((p.targets ?? []).length > 0, `${p.title}: targets`);
    const ds = (p as unknown as { datasource: { uid: string } }).datasource;
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
    assert.equal(ds.uid, '${datasource}', `${p.title}: uses the datasource variable`);
  }
  const used = monitoringMetricNames();
  for (const m of [
    'modelgate_requests_total',
    'modelgate_request_duration_seconds',
    'modelgate_upstream_ttfb_seconds',
    'modelgate_gateway_errors_total',
    'modelgate_ratelimit_decisions_total',
    'modelgate_ratelimit_queue_length',
    'modelgate_rollout_weight',
    'modelgate_rollout_verdicts_total',
    'modelgate_rollout_rollbacks_total',
    'modelgate_controller_proxies',
    'modelgate_controller_leader',
    'modelgate_table_swaps_total',
    'modelgate_table_rejected_total',
    'modelgate_cache_requests_total',
  ])
    assert.ok(used.includes(m), `the dashboard or the rules use ${m}`);
  // Histograms are read through their buckets.
  for (const e of monitoringExpressions())
    if (e.expr.includes('histogram_quantile')) assert.match(e.expr, /_bucket[{[]/, e.where);
});

test('every metric the dashboard and the rules name is a family the source defines', () => {
  const defined = new Set<string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith('.ts'))
        for (const m of readFileSync(join(dir, e.name), 'utf8').matchAll(/'(modelgate_[a-z0-9_]+)'/g))
          defined.add(m[1]!);
    }
  };
  walk(SRC);
  const missing = monitoringMetricNames().filter((m) => !defined.has(m));
  assert.deepEqual(missing, []);
  assert.deepEqual(metricFamilies('rate(modelgate_x_seconds_bucket[5m]) / modelgate_y_total'), [
    'modelgate_x_seconds',
    'modelgate_y_total',
  ]);
});

test('the chart renders the PrometheusRule from the rule file and the dashboard ConfigMap, only when enabled', async () => {
  const objects = render(['-f', ALL_OPTIONS]);
  const rule = one<K8sObject & { spec: unknown }>(objects, 'PrometheusRule');
  assert.equal(rule.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(rule.metadata.name, 'modelgate');
  assert.equal(rule.metadata.namespace, 'monitoring');
  assert.equal(rule.metadata.labels?.release, 'kube-prometheus-stack');
  assert.deepEqual(rule.spec, rules, 'the spec is the rule file, templates in annotations untouched');

  const cm = one<K8sObject & { data: Record<string, string> }>(objects, 'ConfigMap', 'modelgate-dashboard');
  assert.equal(cm.metadata.namespace, 'monitoring');
  assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
  assert.equal(cm.metadata.labels?.['grafana-instance'], 'main');
  assert.equal(cm.metadata.annotations?.grafana_folder, 'ModelGate');
  assert.deepEqual(Object.keys(cm.data), ['modelgate.json']);
  assert.equal(cm.data['modelgate.json'], readFileSync(DASHBOARD_FILE, 'utf8').trimEnd());
  assert.deepEqual(await kubernetesProblems(cm), []);

  const defaults = render();
  assert.deepEqual(byKind(defaults, 'PrometheusRule'), []);
  assert.deepEqual(byKind(defaults, 'ConfigMap', 'modelgate-dashboard'), []);
  // Packaged: .helmignore keeps both folders in the chart.
  const ignore = readFileSync(join(CHART_DIR, '.helmignore'), 'utf8');
  for (const line of ignore.split('\n').filter((l) => l && !l.startsWith('#')))
    assert.ok(!/rules|dashboards|json|yaml/.test(line), `.helmignore: ${line}`);
});
