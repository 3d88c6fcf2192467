// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
// text exposition format (version 0.0.4) that every Prometheus-compatible scraper reads.
// Hand-written rather than a client library: the agent needs a dozen metrics, no
// default process metrics of another library's choosing, and no new dependency.
//
// Values that live elsewhere (kernel counters, map sizes, a sink's counts) are read at
// scrape time by a `collect` callback, so nothing is copied on the event path.

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  labels: Labels;
  value: number;
}

type MetricType = "counter" | "gauge" | "histogram";

interface Family {
  name: string;
  help: string;
  type: MetricType;
  /** Lines without HELP and TYPE. */
  render(): string[];
}

/** A counter or gauge whose series are kept here, keyed by their label values. */
export class LabelledValues {
  private readonly labelNames: readonly string[];
  private readonly series = new Map<string, { labels: Labels; value: number }>();

  constructor(labelNames: readonly string[]) {
    this.labelNames = labelNames;
  }

  /** `values` in the order of the label names given at creation. */
  add(values: readonly string[], amount = 1): void {
    const key = values.join("\u0000");
    const found = this.series.get(key);
    if (found) found.value += amount;
    else this.series.set(key, { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]!])), value: amount });
  }

  set(values: readonly string[], value: number): void {
    const key = values.join("\u0000");
    const found = this.series.get(key);
    if (found) found.value = value;
    else this.series.set(key, { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]!])), value });
  }

  /** Forgets every series (a gauge whose set of label values changed). */
  clear(): void {
    this.series.clear();
  }

  samples(): Sample[] {
    return [...this.series.values()];
  }
}

export class Histogram {
  /** Upper bounds, ascending, without +Inf. */
  private readonly bounds: readonly number[];
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = [...bounds].sort((a, b) => a - b);
    this.counts = this.bounds.map(() => 0);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]!) this.counts[i]!++;
  }

  render(name: string): string[] {
    const lines = this.bounds.map((le, i) => `${name}_bucket{le="${formatValue(le)}"} ${this.counts[i]}`);
    lines.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${formatValue(this.sum)}`, `${name}_count ${this.count}`);
    return lines;
  }
}

export class Registry {
  private readonly families: Family[] = [];

  /** A counter or gauge kept here. Counter names end in _total (Prometheus convention). */
  values(type: "counter" | "gauge", name: string, help: string, labelNames: readonly string[] = []): LabelledValues {
    const values = new LabelledValues(labelNames);
    this.collect(type, name, help, () => values.samples());
    return values;
  }

  /** A counter or gauge read from elsewhere at each scrape. */
  collect(type: "counter" | "gauge", name: string, help: string, read: () => Sample[]): void {
    if (type === "counter" && !name.endsWith("_total")) throw new Error(`counter ${name}: Prometheus counters end in _total`);
    this.add({ name, help, type, render: () => read().map((s) => `${name}${formatLabels(s.labels)} ${formatValue(s.value)}`) });
  }

  histogram(name: string, help: string, bounds: readonly number[]): Histogram {
    const histogram = new Histogram(bounds);
    this.add({ name, help, type: "histogram", render: () => histogram.render(name) });
    return histogram;
  }

  /** The text exposition format: HELP, TYPE, then the samples, per family. */
  expose(): string {
    const out: string[] = [];
    for (const f of this.families) {
      out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${f.name} ${f.type}`, ...f.render());
    }
    return out.join("\n") + "\n";
  }

  private add(family: Family): void {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(family.name)) throw new Error(`${family.name}: not a valid Prometheus metric name`);
    if (this.families.some((f) => f.name === family.name)) throw new Error(`${family.name}: registered twice`);
    this.families.push(family);
  }
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (!entries.length) return "";
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`).join(",")}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
