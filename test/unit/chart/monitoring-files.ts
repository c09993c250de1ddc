/** The chart's monitoring files and the metric names their PromQL uses (monitoring tests). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CHART_DIR } from './chart-helpers.ts';

export const RULES_FILE = join(CHART_DIR, 'rules', 'modelgate-alerts.yaml');
export const RULES_TEST_FILE = join(CHART_DIR, 'rules', 'modelgate-alerts.test.yaml');
export const DASHBOARD_FILE = join(CHART_DIR, 'dashboards', 'modelgate.json');
export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export const rules = parse(readFileSync(RULES_FILE, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
export const alerts = rules.groups.flatMap((g) => g.rules);

export interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}
export const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as {
  schemaVersion: number;
  uid: string;
  templating: { list: { name: string; type: string; query: unknown }[] };
  panels: Panel[];
};

/** The modelgate_ metric families an expression names (histogram series named by family). */
export function metricFamilies(expr: string): string[] {
  return [...expr.matchAll(/modelgate_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''));
}

/** Every PromQL expression of the dashboard (panels and variables) and of the rules. */
export function monitoringExpressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of dashboard.panels)
    for (const t of p.targets ?? []) out.push({ where: `dashboard panel "${p.title}"`, expr: t.expr });
  for (const v of dashboard.templating.list) {
    const q = v.query as { query?: string } | string;
    const expr = typeof q === 'string' ? q : q?.query;
    if (v.type === 'query' && expr) out.push({ where: `dashboard variable ${v.name}`, expr });
  }
  for (const r of alerts) out.push({ where: `alert ${r.alert ?? r.record}`, expr: r.expr });
  return out;
}

/** The distinct metric families the dashboard and the rules use. */
export function monitoringMetricNames(): string[] {
  return [...new Set(monitoringExpressions().flatMap((e) => metricFamilies(e.expr)))].sort();
}
