/** Small helpers shared by the benchmarks: timing loops, medians, and a table with ratios. */

/** Median of a list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
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

/** Prints rows `name  median  ratio-to-baseline` with the first row as the baseline. */
export function printTable(title: string, rows: { name: string; value: number; unit: string }[]): void {
  const base = rows[0]!.value;
  const width = Math.max(...rows.map((r) => r.name.length));
  process.stdout.write(`\n${title}\n`);
  for (const row of rows) {
    const ratio = (row.value / base).toFixed(2);
    process.stdout.write(`  ${row.name.padEnd(width)}  ${row.value.toFixed(row.value < 10 ? 2 : 0).padStart(10)} ${row.unit}  ${ratio}x\n`);
  }
}
