/**
 * Metric families whose children are plain objects the hot path bumps directly. prom-client's own
 * children hash their labels on every inc()/observe() (about a microsecond each); here a child is
 * found once (when a table is built, or on first use) and kept, and label strings are only touched
 * at scrape time. The families plug into a prom-client Registry, which does the exposition.
 */

interface PromValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface PromMetric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: PromValue[];
  aggregator: 'sum';
}

abstract class Family<Cell> {
  protected readonly cells = new Map<string, { labels: Record<string, string>; cell: Cell }>();
  readonly aggregator = 'sum';

  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];

  constructor(name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  protected abstract create(): Cell;

  /** The child for these label values (in labelNames order), created on first use. */
  child(values: readonly string[]): Cell {
    const key = values.join('\u0000');
    let entry = this.cells.get(key);
    if (!entry) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => {
        labels[n] = values[i] ?? '';
      });
      entry = { labels, cell: this.create() };
      this.cells.set(key, entry);
    }
    return entry.cell;
  }

  /** Drops children for which `keep(labels)` is false (routes that left the table). */
  prune(keep: (labels: Record<string, string>) => boolean): void {
    for (const [key, entry] of this.cells) if (!keep(entry.labels)) this.cells.delete(key);
  }

  get size(): number {
    return this.cells.size;
  }

  abstract get(): PromMetric;
}

export interface CounterCell {
  value: number;
}

export class CounterFamily extends Family<CounterCell> {
  readonly type = 'counter';
  protected create(): CounterCell {
    return { value: 0 };
  }
  get(): PromMetric {
    const values: PromValue[] = [];
    for (const { labels, cell } of this.cells.values()) values.push({ labels, value: cell.value });
    return { name: this.name, help: this.help, type: 'counter', values, aggregator: 'sum' };
  }
}

export class GaugeFamily extends Family<CounterCell> {
  readonly type = 'gauge';
  protected create(): CounterCell {
    return { value: 0 };
  }
  get(): PromMetric {
    const values: PromValue[] = [];
    for (const { labels, cell } of this.cells.values()) values.push({ labels, value: cell.value });
    return { name: this.name, help: this.help, type: 'gauge', values, aggregator: 'sum' };
  }
}

export class HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  private readonly bounds: readonly number[];
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

/** Buckets from a millisecond to ten minutes: inference spans both. Seconds. */
export const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
] as const;

export class HistogramFamily extends Family<HistogramCell> {
  readonly type = 'histogram';
  readonly bounds: readonly number[];
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    bounds: readonly number[] = LATENCY_BUCKETS,
  ) {
    super(name, help, labelNames);
    this.bounds = bounds;
  }
  protected create(): HistogramCell {
    return new HistogramCell(this.bounds);
  }
  get(): PromMetric {
    const values: PromValue[] = [];
    for (const { labels, cell } of this.cells.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += cell.counts[i]!;
        values.push({ labels: { ...labels, le }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({
        labels: { ...labels, le: '+Inf' },
        value: cell.count,
        metricName: `${this.name}_bucket`,
      });
      values.push({ labels, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }
}

/**
 * A family whose values are read from elsewhere at scrape time (state the hot path keeps anyway,
 * such as health-check statistics), so nothing is counted twice.
 */
export class CallbackFamily {
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  private readonly read: () => [Record<string, string>, number][];

  constructor(
    name: string,
    help: string,
    type: 'counter' | 'gauge',
    read: () => [Record<string, string>, number][],
  ) {
    this.name = name;
    this.help = help;
    this.type = type;
    this.read = read;
  }

  get(): PromMetric {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values: this.read().map(([labels, value]) => ({ labels, value })),
      aggregator: 'sum',
    };
  }
}
