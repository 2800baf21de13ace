/**
 * Child process of the EventLog contract's kill -9 tests. Builds an adapter from a spec, runs a job
 * forever and prints one JSON line to stdout per step, until it is killed:
 *
 *   tsx libs/event-log/src/testing/append-child.ts '<ChildSpec as JSON>'
 *
 * - `append`: `writers` concurrent loops, each owning one key `key-<n>`, append 1..`maxChunk`
 *   records per call with values `<key>#<seq>` (seq dense per key). One line per ACKNOWLEDGED
 *   append: `{"ack":{"key","values":[…],"positions":[…]}}`.
 * - `transform`: consumes `input` in `group` and, for each record, asks for the output
 *   `{topic: output, key, value: "out:<value>"}` (consume-transform-produce). One line per batch
 *   handed to the handler: `{"batch":<size>}`.
 *
 * The first line is `{"ready":true}` once the adapter is built.
 */
import type { AppendRecord, EventLog, LogPosition } from '../event-log.port';

export type ChildJob =
  | { kind: 'append'; topic: string; writers: number; maxChunk: number }
  | { kind: 'transform'; input: string; output: string; group: string; maxBatchSize: number };

export interface ChildSpec {
  /** Absolute path of the module exporting the adapter class. */
  module: string;
  exportName: string;
  /** JSON-serialisable constructor options of the adapter. */
  options: unknown;
  job: ChildJob;
}

export interface AppendChildAck {
  key: string;
  values: string[];
  positions: LogPosition[];
}

/** The output the `transform` job (and the contract test checking it) derives from an input. */
export function transformOutput(output: string, record: { key: string; value: string }): AppendRecord {
  return { topic: output, key: record.key, value: `out:${record.value}` };
}

type EventLogConstructor = new (options: unknown) => EventLog;

async function main(): Promise<void> {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error('usage: append-child.ts <ChildSpec as JSON>');
  const spec = JSON.parse(raw) as ChildSpec;
  const loaded = (await import(spec.module)) as Record<string, unknown>;
  const Adapter = loaded[spec.exportName];
  if (typeof Adapter !== 'function') {
    throw new Error(`${spec.module} does not export a class named ${spec.exportName}`);
  }
  const log = new (Adapter as EventLogConstructor)(spec.options);
  const { job } = spec;
  switch (job.kind) {
    case 'append':
      await log.ensureTopics([{ topic: job.topic }]);
      writeLine({ ready: true });
      await Promise.all(Array.from({ length: job.writers }, (_, index) => appendForever(log, job, index)));
      return;
    case 'transform':
      writeLine({ ready: true });
      await log.consume({
        topics: [job.input],
        group: job.group,
        maxBatchSize: job.maxBatchSize,
        handler: (batch) => {
          writeLine({ batch: batch.length });
          return Promise.resolve({ append: batch.map((record) => transformOutput(job.output, record)) });
        },
      });
      await new Promise<never>(() => setInterval(() => undefined, 60_000)); // until killed
      return;
  }
}

async function appendForever(log: EventLog, job: Extract<ChildJob, { kind: 'append' }>, index: number): Promise<void> {
  const key = `key-${index}`;
  for (let seq = 0, round = 0; ; round++) {
    const size = 1 + ((round * 7 + index) % job.maxChunk);
    const records: AppendRecord[] = [];
    for (let i = 0; i < size; i++) records.push({ topic: job.topic, key, value: `${key}#${seq++}` });
    const positions = await log.append(records);
    const ack: AppendChildAck = { key, values: records.map((record) => record.value), positions };
    writeLine({ ack });
  }
}

function writeLine(message: unknown): void {
  // stdout is a pipe: writes are synchronous on Linux, so a printed line survives kill -9.
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(
      `append-child failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  });
}
