/**
 * `npm run bench -- <name> [options]`: runs one benchmark from bench/<name>.bench.ts. Each module
 * exports `run(args: string[]): Promise<void>` and reports through ./report. `--smoke` asks for a
 * tiny, fast run (what `npm test` does so the scripts keep working).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

interface BenchModule {
  description: string;
  run(args: string[]): Promise<void>;
}

function available(): string[] {
  return readdirSync(__dirname)
    .filter((f) => f.endsWith('.bench.ts'))
    .map((f) => f.slice(0, -'.bench.ts'.length))
    .sort();
}

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  const names = available();
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(`Usage: npm run bench -- <name> [options]   (--smoke for a tiny run)\n\nBenchmarks:\n`);
    for (const n of names) {
      const mod = (await import(join(__dirname, `${n}.bench.ts`))) as BenchModule;
      process.stdout.write(`  ${n.padEnd(14)} ${mod.description}\n`);
    }
    return;
  }
  if (!names.includes(name)) {
    process.stderr.write(`bench: unknown benchmark "${name}"; one of: ${names.join(', ')}\n`);
    process.exit(2);
  }
  const mod = (await import(join(__dirname, `${name}.bench.ts`))) as BenchModule;
  await mod.run(args);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
