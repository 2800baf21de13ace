/**
 * What every benchmark reports: a table on stdout and a JSON file under bench/results/ with the
 * raw figures, the machine, the exact command line and the backend.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

export type Cell = string | number;

export interface BenchReport {
  /** Benchmark name (`npm run bench -- <name>`). */
  name: string;
  /** `embedded` or `kafka+opensearch` (or what the benchmark measured against). */
  backend: string;
  /** Column titles and rows of the printed table. */
  columns: string[];
  rows: Cell[][];
  /** Every raw figure behind the table. */
  raw: unknown;
  /** Free-text notes printed under the table (limits, targets, what was hit). */
  notes?: string[];
}

export function machine(): { cores: number; cpuModel: string; memoryGiB: number; node: string; platform: string } {
  const list = cpus();
  return {
    cores: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

export function formatTable(columns: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths = columns.map((c, i) => Math.max(c.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(columns), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...text.map(line)].join('\n');
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(2) : n.toPrecision(3);
}

/** Prints the table and writes `bench/results/<name>-<timestamp>.json`; returns the file path. */
export function report(r: BenchReport, outDir = join(__dirname, 'results')): string {
  const at = new Date().toISOString();
  process.stdout.write(`\n${r.name} (${r.backend})\n${formatTable(r.columns, r.rows)}\n`);
  for (const note of r.notes ?? []) process.stdout.write(`  ${note}\n`);
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `${r.name}-${at.replace(/[:.]/g, '-')}.json`);
  const command = ['npm', 'run', 'bench', '--', ...process.argv.slice(2)].join(' ');
  writeFileSync(file, `${JSON.stringify({ ...r, at, command, machine: machine() }, null, 2)}\n`);
  process.stdout.write(`  raw figures: ${file}\n`);
  return file;
}

/** Percentile (0–100) of a list of numbers (nearest rank); NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? NaN;
}
