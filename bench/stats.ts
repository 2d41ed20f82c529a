/** Small helpers shared by the benchmarks: timing loops, medians, and a table with ratios. */

/** Median of a list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The q-quantile (0..1) of a list of numbers, by nearest rank. */
export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Runs `fn` `rounds` times in batches of `batch` calls; returns the median cost of one call in ns. */
export function timePerCall(fn: () => void, rounds = 15, batch = 2000): number {
  for (let i = 0; i < batch; i++) fn();
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn();
    samples.push(Number(process.hrtime.bigint() - start) / batch);
  }
  return median(samples);
}

/** One row of a table: `value` is the median; null for a system that was skipped (say why in `note`). */
export interface Row {
  name: string;
  value: number | null;
  unit: string;
  /** Sample count, shown as n=… */
  samples?: number;
  /** Shown after the ratio: the spread, or why the row is empty. */
  note?: string;
}

/** A row from raw samples: the median, with the count and the 10th–90th percentile range as the note. */
export function sampleRow(name: string, samples: number[], unit: string, extra?: string): Row {
  if (samples.length === 0) return { name, value: null, unit, note: extra ?? 'no samples' };
  const spread = samples.length >= 5 ? `p10–p90 ${formatValue(quantile(samples, 0.1))}–${formatValue(quantile(samples, 0.9))}` : '';
  return { name, value: median(samples), unit, samples: samples.length, note: [spread, extra].filter((s) => s !== undefined && s !== '').join('; ') };
}

function formatValue(value: number): string {
  return value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0);
}

/**
 * Prints rows `name  median unit  ratio  n=…  note`; the ratio is to the row at `baseline`
 * (default the first row); rows without a value print `skipped`.
 */
export function printTable(title: string, rows: Row[], options: { baseline?: number } = {}): void {
  const base = rows[options.baseline ?? 0]?.value ?? null;
  const width = Math.max(...rows.map((r) => r.name.length));
  const unitWidth = Math.max(...rows.map((r) => r.unit.length));
  process.stdout.write(`\n${title}\n`);
  for (const row of rows) {
    if (row.value === null) {
      process.stdout.write(`  ${row.name.padEnd(width)}  ${'skipped'.padStart(10)} ${''.padEnd(unitWidth)}  ${row.note ?? ''}\n`);
      continue;
    }
    const ratio = base === null || base === 0 ? '     -' : `${(row.value / base).toFixed(2)}x`.padStart(6);
    const count = row.samples === undefined ? '' : `  n=${row.samples}`;
    const note = row.note === undefined || row.note === '' ? '' : `  ${row.note}`;
    process.stdout.write(`  ${row.name.padEnd(width)}  ${formatValue(row.value).padStart(10)} ${row.unit.padEnd(unitWidth)}  ${ratio}${count}${note}\n`);
  }
}
