/**
 * The EventLog contract suite: ONE set of tests that every adapter (embedded SQLite, Kafka) must
 * pass, written against the port only. Run it from an adapter's spec file:
 *
 *   describeEventLogContract('sqlite', { create: async (prefix) => new SqliteEventLogAdapter(…), childSpec: … });
 *
 * Not exported from the library's index.ts: it needs Jest's globals, and tsconfig.build.json leaves
 * `*.contract.ts` out of the production build. Import it from this file.
 *
 * Only what the port promises is asserted: offsets increase per partition (not that they are
 * dense — Kafka transaction markers take offsets), records of a key keep one partition and their
 * append order (call order, also for appends issued without awaiting the previous one), groups resume after their committed offsets, consumer outputs are committed
 * atomically with the offsets, acknowledged appends survive kill -9.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { AppendRecord, EventLog, LogPosition, StoredRecord, Subscription } from './event-log.port';
import { transformOutput, type AppendChildAck, type ChildSpec } from './testing/append-child';
import { expectEventually } from './testing/expect-eventually';
import { syncHandler } from './testing/sync-handler';

export interface EventLogContractFactory {
  /**
   * A fresh adapter whose topics (and consumer groups) are isolated by the unique `prefix`.
   * Called again with the same prefix, it opens the same storage (a "restart").
   */
  create(prefix: string): Promise<EventLog>;
  /** How a child process builds the same adapter as `create(prefix)`. */
  childSpec(prefix: string): {
    /** Absolute path of the adapter's module (.ts; the child runs under tsx). */
    module: string;
    /** Name of the adapter class exported by `module`. */
    exportName: string;
    /** JSON-serialisable options for the adapter's constructor. */
    options: unknown;
  };
}

const REPO_ROOT = resolve(__dirname, '../../..');
const TSX = join(REPO_ROOT, 'node_modules/.bin/tsx');
const CHILD_SCRIPT = join(__dirname, 'testing/append-child.ts');
const TEST_TIMEOUT_MS = 60_000;

export function describeEventLogContract(adapterName: string, factory: EventLogContractFactory): void {
  describe(`EventLog contract: ${adapterName}`, () => {
    let prefix = '';
    let opened: EventLog[] = [];
    let subscriptions: Subscription[] = [];

    const open = async (): Promise<EventLog> => {
      const log = await factory.create(prefix);
      opened.push(log);
      return log;
    };
    const close = async (log: EventLog): Promise<void> => {
      opened = opened.filter((candidate) => candidate !== log);
      await log.close();
    };
    const track = (subscription: Subscription): Subscription => {
      subscriptions.push(subscription);
      return subscription;
    };

    beforeEach(() => {
      prefix = `c${Date.now().toString(36)}${randomBytes(3).toString('hex')}.`;
    });

    afterEach(async () => {
      const pendingSubscriptions = subscriptions;
      const pendingLogs = opened;
      subscriptions = [];
      opened = [];
      await Promise.allSettled(pendingSubscriptions.map((subscription) => subscription.stop()));
      await Promise.allSettled(pendingLogs.map((log) => log.close()));
    });

    it(
      'appends and reads back records: positions in input order, endOffsets after the last record',
      async () => {
        const log = await open();
        await log.ensureTopics([
          { topic: 'round-trip', partitions: 3 },
          { topic: 'round-trip-b', partitions: 1 },
        ]);
        const records: AppendRecord[] = Array.from({ length: 30 }, (_, i) => ({
          topic: i % 5 === 4 ? 'round-trip-b' : 'round-trip',
          key: `key-${i % 7}`,
          value: JSON.stringify({ i, text: 'héllo "quoted" \n line' }),
        }));

        expect(await log.append([])).toEqual([]);
        const positions = await log.append(records);

        expect(positions).toHaveLength(records.length);
        const lastOffset = new Map<string, number>();
        for (const [i, record] of records.entries()) {
          const position = at(positions, i);
          expect(position.topic).toBe(record.topic);
          expect(position.partition).toBe(await log.partitionFor(record.topic, record.key));
          const slot = `${position.topic}/${position.partition}`;
          expect(position.offset).toBeGreaterThan(lastOffset.get(slot) ?? -1);
          lastOffset.set(slot, position.offset);
          const [stored] = await log.read(position.topic, position.partition, position.offset, 1);
          expect(stored).toMatchObject({ ...record, ...position });
          expect(typeof stored?.timestamp).toBe('number');
        }

        for (const topic of ['round-trip', 'round-trip-b']) {
          const partitions = topic === 'round-trip' ? 3 : 1;
          const ends = await log.endOffsets(topic);
          expect(ends.map((end) => end.partition).sort()).toEqual(range(partitions));
          for (const end of ends) {
            expect(end.topic).toBe(topic);
            const expected = records
              .map((record, i) => ({ record, position: at(positions, i) }))
              .filter(({ position }) => position.topic === topic && position.partition === end.partition);
            expect(end.offset).toBeGreaterThan(lastOffset.get(`${topic}/${end.partition}`) ?? -1);
            const stored = await readPartition(log, topic, end.partition, end.offset);
            expect(stored.map(({ key, value, offset }) => ({ key, value, offset }))).toEqual(
              expected.map(({ record, position }) => ({
                key: record.key,
                value: record.value,
                offset: position.offset,
              })),
            );
            expect(await log.read(topic, end.partition, end.offset, 10)).toEqual([]);
          }
        }

        // fromOffset is inclusive and limit is honoured.
        const first = at(positions, 0);
        const window = await log.read(first.topic, first.partition, first.offset, 2);
        expect(window).toHaveLength(2);
        expect(at(window, 0).offset).toBe(first.offset);
        expect(at(window, 1).offset).toBeGreaterThan(first.offset);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'keeps every key in one partition and in append order under concurrent appends',
      async () => {
        const log = await open();
        const topic = 'ordered';
        await log.ensureTopics([{ topic, partitions: 4 }]);
        const keys = range(20).map((i) => `agent-${i}`);
        const perKey = 200;
        const random = mulberry32(42);
        const acknowledged = new Map<string, string>();

        // 10 concurrent writers, each owning two keys and appending chunks that interleave them,
        // with up to 4 appends in flight per writer: append order is call order.
        const writer = async (owned: string[]): Promise<void> => {
          const next = new Map(owned.map((key) => [key, 0]));
          const inFlight: Array<Promise<void>> = [];
          while ([...next.values()].some((seq) => seq < perKey)) {
            const chunk: AppendRecord[] = [];
            const size = 1 + Math.floor(random() * 15);
            for (let i = 0; i < size; i++) {
              const unfinished = owned.filter((key) => (next.get(key) ?? perKey) < perKey);
              const key = unfinished[Math.floor(random() * unfinished.length)];
              if (key === undefined) break;
              const seq = next.get(key) ?? 0;
              next.set(key, seq + 1);
              chunk.push({ topic, key, value: `${key}#${seq}` });
            }
            inFlight.push(
              log.append(chunk).then((positions) => {
                chunk.forEach((record, i) => {
                  const position = at(positions, i);
                  acknowledged.set(`${position.partition}/${position.offset}`, record.value);
                });
              }),
            );
            if (inFlight.length >= 4) await inFlight.shift();
          }
          await Promise.all(inFlight);
        };
        await Promise.all(range(10).map((w) => writer([at(keys, 2 * w), at(keys, 2 * w + 1)])));

        const byKey = new Map<string, StoredRecord[]>();
        for (const record of await readTopic(log, topic)) {
          expect(acknowledged.get(`${record.partition}/${record.offset}`)).toBe(record.value);
          const list = byKey.get(record.key) ?? [];
          list.push(record);
          byKey.set(record.key, list);
        }
        expect([...byKey.keys()].sort()).toEqual([...keys].sort());
        for (const key of keys) {
          const list = byKey.get(key) ?? [];
          expect(list.map((record) => record.value)).toEqual(range(perKey).map((seq) => `${key}#${seq}`));
          expect(new Set(list.map((record) => record.partition))).toEqual(
            new Set([await log.partitionFor(topic, key)]),
          );
        }
        expect(acknowledged.size).toBe(keys.length * perKey);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'appends 20,000 records in one call and a consumer group reads each exactly once',
      async () => {
        const log = await open();
        const topic = 'bulk';
        await log.ensureTopics([{ topic, partitions: 4 }]);
        const padding = 'x'.repeat(100);
        const records = range(20_000).map((i) => ({ topic, key: `agent-${i % 50}`, value: `${i}:${padding}` }));

        const positions = await log.append(records);
        expect(positions).toHaveLength(records.length);
        expect(new Set(positions.map((p) => `${p.partition}/${p.offset}`)).size).toBe(records.length);

        const seen = new Map<string, number>();
        const lastOffset = new Map<number, number>();
        let orderViolations = 0;
        const subscription = track(
          await log.consume({
            topics: [topic],
            group: 'bulk-readers',
            handler: syncHandler((batch) => {
              for (const record of batch) {
                seen.set(record.value, (seen.get(record.value) ?? 0) + 1);
                if (record.offset <= (lastOffset.get(record.partition) ?? -1)) orderViolations++;
                lastOffset.set(record.partition, record.offset);
              }
            }),
          }),
        );
        await subscription.caughtUp();

        expect(seen.size).toBe(records.length);
        expect([...seen.values()].every((count) => count === 1)).toBe(true);
        expect(orderViolations).toBe(0);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'resumes a consumer group after its committed offsets (stop commits the in-flight batch)',
      async () => {
        const topic = 'resume';
        const first = await open();
        await first.ensureTopics([{ topic, partitions: 2 }]);
        await first.append(range(100).map((i) => ({ topic, key: `agent-${i % 10}`, value: `${i}` })));

        const delivered: StoredRecord[] = [];
        let release: () => void = () => undefined;
        const gate = new Promise<void>((resolveGate) => (release = resolveGate));
        const firstMember = track(
          await first.consume({
            topics: [topic],
            group: 'resumers',
            maxBatchSize: 7,
            handler: async (batch) => {
              delivered.push(...batch);
              if (delivered.length >= 30) await gate; // hold a batch in flight while we stop
            },
          }),
        );
        await expectEventually(() => expect(delivered.length).toBeGreaterThanOrEqual(30));
        const stopped = firstMember.stop();
        release();
        await stopped;
        const deliveredBeforeRestart = delivered.length;
        expect(deliveredBeforeRestart).toBeLessThan(100);
        await close(first);

        const second = await open();
        const secondMember = track(
          await second.consume({
            topics: [topic],
            group: 'resumers',
            from: 'end', // committed offsets win over `from`
            maxBatchSize: 7,
            handler: syncHandler((batch) => {
              delivered.push(...batch);
            }),
          }),
        );
        await secondMember.caughtUp();

        expect(delivered).toHaveLength(100);
        expect(new Set(delivered.map((record) => record.value))).toEqual(new Set(range(100).map(String)));
        expectPartitionOrder(delivered);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'redelivers a batch whose handler threw (never skips it) and reports the error to onError',
      async () => {
        const log = await open();
        const topic = 'retry';
        await log.ensureTopics([{ topic, partitions: 2 }]);
        await log.append(range(20).map((i) => ({ topic, key: `agent-${i % 4}`, value: `${i}` })));

        const deliveries: StoredRecord[][] = [];
        const handled: StoredRecord[] = [];
        const errors: Array<{ error: unknown; records: StoredRecord[] }> = [];
        const boom = new Error('handler failed once');
        track(
          await log.consume({
            topics: [topic],
            group: 'retriers',
            maxBatchSize: 5,
            handler: syncHandler((batch) => {
              deliveries.push(batch);
              if (deliveries.length === 2) throw boom;
              handled.push(...batch);
            }),
            onError: (error, records) => errors.push({ error, records }),
          }),
        );

        await expectEventually(() => expect(handled).toHaveLength(20));
        expect(errors).toHaveLength(1);
        expect(errors[0]?.error).toBe(boom);
        const failedBatch = deliveries[1] ?? [];
        expect(errors[0]?.records.map((record) => record.value)).toEqual(failedBatch.map((record) => record.value));
        expect(failedBatch.length).toBeGreaterThan(0);
        const handledValues = handled.map((record) => record.value);
        for (const record of failedBatch) expect(handledValues).toContain(record.value);
        expect(new Set(handledValues).size).toBe(20);
        expectPartitionOrder(handled);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'tells a lone group member it owns every partition before its first batch (onAssignment)',
      async () => {
        const log = await open();
        await log.ensureTopics([
          { topic: 'assign-a', partitions: 3 },
          { topic: 'assign-b', partitions: 3 },
        ]);
        await log.append([{ topic: 'assign-a', key: 'k', value: 'v' }]);
        const calls: string[] = [];
        track(
          await log.consume({
            topics: ['assign-a', 'assign-b'],
            group: 'assignees',
            onAssignment: async (assigned) => {
              calls.push(
                `assigned ${assigned
                  .map((a) => `${a.topic}/${a.partition}`)
                  .sort()
                  .join(',')}`,
              );
              await new Promise((r) => setImmediate(r));
            },
            handler: syncHandler((batch) => {
              calls.push(`batch ${batch.length}`);
            }),
          }),
        );
        await expectEventually(() => expect(calls).toContain('batch 1'));
        expect(calls[0]).toBe('assigned assign-a/0,assign-a/1,assign-a/2,assign-b/0,assign-b/1,assign-b/2');
        expect(calls.filter((c) => c.startsWith('assigned'))).toHaveLength(1);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'calls the handler with an empty batch every tickMs while idle, serialized with record batches, and appends its output',
      async () => {
        const log = await open();
        await log.ensureTopics([
          { topic: 'tick-in', partitions: 2 },
          { topic: 'tick-out', partitions: 1 },
        ]);
        const batches: number[] = [];
        let running = 0;
        let overlapped = false;
        track(
          await log.consume({
            topics: ['tick-in'],
            group: 'tickers',
            tickMs: 100,
            handler: async (batch) => {
              running++;
              if (running > 1) overlapped = true;
              batches.push(batch.length);
              await new Promise((r) => setImmediate(r));
              running--;
              return { append: [{ topic: 'tick-out', key: 'k', value: `batch of ${batch.length}` }] };
            },
          }),
        );
        await log.append([{ topic: 'tick-in', key: 'a', value: '1' }]);
        await expectEventually(() => expect(batches.filter((n) => n === 0).length).toBeGreaterThanOrEqual(3));
        await log.append([{ topic: 'tick-in', key: 'b', value: '2' }]);
        await expectEventually(() => expect(batches.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2));
        expect(overlapped).toBe(false);
        const outputs = await readTopic(log, 'tick-out');
        expect(outputs.filter((r) => r.value === 'batch of 0').length).toBeGreaterThanOrEqual(3);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'commits handler outputs atomically with the consumed offsets: exactly one output per input across restarts',
      async () => {
        const input = 'ctp-in';
        const output = 'ctp-out';
        const first = await open();
        await first.ensureTopics([
          { topic: input, partitions: 3 },
          { topic: output, partitions: 2 },
        ]);
        const inputs = range(60).map((i) => ({ topic: input, key: `agent-${i % 6}`, value: `${i}` }));
        await first.append(inputs);

        const transform = (batch: StoredRecord[]): AppendRecord[] =>
          batch.map((record) => ({ topic: output, key: record.key, value: `out:${record.value}` }));
        let calls = 0;
        const errors: unknown[] = [];
        let release: () => void = () => undefined;
        const gate = new Promise<void>((resolveGate) => (release = resolveGate));
        let consumed = 0;
        const firstMember = track(
          await first.consume({
            topics: [input],
            group: 'transformers',
            maxBatchSize: 8,
            handler: async (batch) => {
              calls++;
              // The 2nd batch asks for an output the log must refuse: the whole commit fails, so
              // none of its valid outputs may appear, and the batch is retried.
              if (calls === 2)
                return { append: [...transform(batch), { topic: 'not a valid topic!', key: 'k', value: 'v' }] };
              consumed += batch.length;
              if (consumed >= 24) await gate;
              return { append: transform(batch) };
            },
            onError: (error) => errors.push(error),
          }),
        );
        await expectEventually(() => expect(consumed).toBeGreaterThanOrEqual(24));
        const stopped = firstMember.stop();
        release();
        await stopped;
        expect(errors.length).toBeGreaterThanOrEqual(1);
        await close(first);

        const second = await open();
        const secondMember = track(
          await second.consume({
            topics: [input],
            group: 'transformers',
            maxBatchSize: 8,
            handler: syncHandler((batch) => ({ append: transform(batch) })),
          }),
        );
        await secondMember.caughtUp();

        const outputs = await readTopic(second, output);
        expect(outputs.map((record) => record.value).sort()).toEqual(
          inputs.map((record) => `out:${record.value}`).sort(),
        );
        // Outputs of one key keep the order of their inputs.
        for (const key of new Set(inputs.map((record) => record.key))) {
          const expected = inputs.filter((record) => record.key === key).map((record) => `out:${record.value}`);
          expect(outputs.filter((record) => record.key === key).map((record) => record.value)).toEqual(expected);
        }
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "delivers only new records to an ephemeral consumer from 'end', and caughtUp waits for them",
      async () => {
        const log = await open();
        const topic = 'live';
        await log.ensureTopics([{ topic, partitions: 2 }]);
        await log.append(range(5).map((i) => ({ topic, key: `agent-${i}`, value: `old-${i}` })));

        const fromEnd: string[] = [];
        const fromBeginning: string[] = [];
        const tail = track(
          await log.consume({
            topics: [topic],
            from: 'end',
            handler: syncHandler((batch) => {
              fromEnd.push(...batch.map((record) => record.value));
            }),
          }),
        );
        const replay = track(
          await log.consume({
            topics: [topic],
            handler: syncHandler((batch) => {
              fromBeginning.push(...batch.map((record) => record.value));
            }),
          }),
        );
        await tail.caughtUp(); // nothing new yet: resolves without any delivery
        expect(fromEnd).toEqual([]);

        await log.append(range(5).map((i) => ({ topic, key: `agent-${i}`, value: `new-${i}` })));
        await tail.caughtUp();
        expect([...fromEnd].sort()).toEqual(range(5).map((i) => `new-${i}`));

        await log.append(range(3).map((i) => ({ topic, key: `agent-${i}`, value: `newer-${i}` })));
        const ends: LogPosition[] = await log.endOffsets(topic);
        await tail.caughtUp(ends);
        expect(fromEnd).toHaveLength(8);
        expect(fromEnd.some((value) => value.startsWith('old-'))).toBe(false);

        await replay.caughtUp(ends);
        expect(fromBeginning).toHaveLength(13);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'keeps every acknowledged append across kill -9 of the writing process',
      async () => {
        const topic = 'durable';
        const acks: AppendChildAck[] = [];
        await runChildUntilKilled(
          { ...factory.childSpec(prefix), job: { kind: 'append', topic, writers: 4, maxChunk: 5 } },
          (line) => {
            const { ack } = line as { ack?: AppendChildAck };
            if (ack) acks.push(ack);
            return acks.length >= 60;
          },
        );
        expect(acks.length).toBeGreaterThanOrEqual(60);

        const log = await open();
        const stored = new Map<string, StoredRecord>();
        for (const record of await readTopic(log, topic)) stored.set(`${record.partition}/${record.offset}`, record);
        const lastSeq = new Map<string, number>();
        for (const ack of acks) {
          ack.positions.forEach((position, i) => {
            expect(stored.get(`${position.partition}/${position.offset}`)).toMatchObject({
              topic,
              key: ack.key,
              value: ack.values[i],
            });
          });
          const seq = Number(ack.values[ack.values.length - 1]?.split('#')[1]);
          lastSeq.set(ack.key, Math.max(lastSeq.get(ack.key) ?? -1, seq));
        }
        // Per key: the log holds a gap-free prefix 0..n (n >= last acknowledged seq), in order.
        for (const [key, last] of lastSeq) {
          const values = [...stored.values()]
            .filter((record) => record.key === key)
            .sort((a, b) => a.offset - b.offset)
            .map((record) => record.value);
          expect(values.length).toBeGreaterThan(last);
          expect(values).toEqual(range(values.length).map((seq) => `${key}#${seq}`));
        }
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'keeps consume-transform-produce exactly-once across kill -9 of the consuming process',
      async () => {
        const input = 'crash-in';
        const output = 'crash-out';
        const group = 'crash-transformers';
        const log = await open();
        await log.ensureTopics([
          { topic: input, partitions: 2 },
          { topic: output, partitions: 2 },
        ]);
        const inputs = range(3_000).map((i) => ({ topic: input, key: `agent-${i % 8}`, value: `${i}` }));
        await log.append(inputs);

        // Small batches: the child spends most of its time committing, where a kill hurts most.
        let batches = 0;
        await runChildUntilKilled(
          { ...factory.childSpec(prefix), job: { kind: 'transform', input, output, group, maxBatchSize: 3 } },
          (line) => ('batch' in (line as object) ? ++batches >= 40 : false),
          5,
        );

        const survivor = track(
          await log.consume({
            topics: [input],
            group,
            maxBatchSize: 50,
            handler: syncHandler((batch) => ({ append: batch.map((record) => transformOutput(output, record)) })),
          }),
        );
        await survivor.caughtUp();

        const outputs = await readTopic(log, output);
        expect(outputs).toHaveLength(inputs.length);
        for (const key of new Set(inputs.map((record) => record.key))) {
          const expected = inputs.filter((record) => record.key === key).map((record) => `out:${record.value}`);
          expect(outputs.filter((record) => record.key === key).map((record) => record.value)).toEqual(expected);
        }
      },
      TEST_TIMEOUT_MS,
    );

    it(
      'continues each partition after a restart: new offsets follow the old ones, order kept',
      async () => {
        const topic = 'restart';
        const first = await open();
        await first.ensureTopics([{ topic, partitions: 2 }]);
        const keys = ['a', 'b', 'c', 'd', 'e'];
        const before = await first.append(
          range(10).map((i) => ({ topic, key: at(keys, i % 5), value: `before-${i}` })),
        );
        const endsBefore = await first.endOffsets(topic);
        await close(first);

        const second = await open();
        expect(await second.endOffsets(topic)).toEqual(endsBefore);
        const after = await second.append(range(10).map((i) => ({ topic, key: at(keys, i % 5), value: `after-${i}` })));
        for (const position of after) {
          const end = endsBefore.find((candidate) => candidate.partition === position.partition);
          expect(position.offset).toBeGreaterThanOrEqual(end?.offset ?? 0);
          for (const old of before.filter((candidate) => candidate.partition === position.partition)) {
            expect(position.offset).toBeGreaterThan(old.offset);
          }
        }
        const records = await readTopic(second, topic);
        expectPartitionOrder(records);
        for (const key of keys) {
          expect(records.filter((record) => record.key === key).map((record) => record.value)).toEqual([
            ...range(10)
              .filter((i) => i % 5 === keys.indexOf(key))
              .map((i) => `before-${i}`),
            ...range(10)
              .filter((i) => i % 5 === keys.indexOf(key))
              .map((i) => `after-${i}`),
          ]);
        }
      },
      TEST_TIMEOUT_MS,
    );
  });
}

/** Every record of one partition below `end`, in offset order. */
async function readPartition(log: EventLog, topic: string, partition: number, end: number): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  let from = 0;
  while (from < end) {
    const page = await log.read(topic, partition, from, 5_000);
    const last = page[page.length - 1];
    if (!last) break;
    records.push(...page.filter((record) => record.offset < end));
    from = last.offset + 1;
  }
  return records;
}

/** Every record of a topic (all partitions, each in offset order). */
async function readTopic(log: EventLog, topic: string): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  for (const end of await log.endOffsets(topic)) {
    records.push(...(await readPartition(log, topic, end.partition, end.offset)));
  }
  return records;
}

/** Deliveries of each partition are in strictly increasing offset order. */
function expectPartitionOrder(records: StoredRecord[]): void {
  const last = new Map<string, number>();
  const violations: string[] = [];
  for (const record of records) {
    const slot = `${record.topic}/${record.partition}`;
    const previous = last.get(slot) ?? -1;
    if (record.offset <= previous) violations.push(`${slot}: offset ${record.offset} after ${previous}`);
    last.set(slot, record.offset);
  }
  expect(violations).toEqual([]);
}

/**
 * Spawns the child (tsx running testing/append-child.ts) and passes each stdout line (parsed JSON)
 * to `onLine`; when `onLine` returns true the child is killed with SIGKILL, after a random delay of
 * up to `jitterMs` (so the kill lands anywhere in the child's loop). Resolves once the child is dead
 * and every line it printed has been read.
 */
async function runChildUntilKilled(spec: ChildSpec, onLine: (line: unknown) => boolean, jitterMs = 0): Promise<void> {
  // The tsx CLI runs the script in a child process of its own: start it in a new process group
  // and SIGKILL the whole group, so the process doing the work is the one killed.
  const child = spawn(TSX, [CHILD_SCRIPT, JSON.stringify(spec)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let killScheduled = false;
  let timedOut = false;
  const killGroup = (): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<NodeJS.Signals | number | null>((resolveExit, rejectExit) => {
    child.on('exit', (code, signal) => resolveExit(signal ?? code));
    child.on('error', (error) => rejectExit(new Error(`could not run ${TSX} ${CHILD_SCRIPT}`, { cause: error })));
  });
  const lines = createInterface({ input: child.stdout });
  const allLinesRead = new Promise<void>((resolveLines) => lines.on('close', resolveLines));
  let lineError: unknown;
  lines.on('line', (line) => {
    try {
      if (onLine(JSON.parse(line)) && !killScheduled) {
        killScheduled = true;
        setTimeout(killGroup, Math.random() * jitterMs);
      }
    } catch (error: unknown) {
      lineError ??= error;
      killGroup();
    }
  });
  const childTimeoutMs = TEST_TIMEOUT_MS - 10_000;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, childTimeoutMs);
  try {
    const exit = await exited;
    await allLinesRead;
    if (lineError !== undefined) {
      throw lineError instanceof Error ? lineError : new Error(JSON.stringify(lineError));
    }
    if (timedOut) {
      throw new Error(`the child process did not reach the kill point within ${childTimeoutMs} ms:\n${stderr}`);
    }
    if (exit !== 'SIGKILL') {
      throw new Error(`the child process exited (${String(exit)}) before it was killed:\n${stderr}`);
    }
  } finally {
    clearTimeout(timer);
  }
}

function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new Error(`no element at index ${index} (length ${items.length})`);
  return item;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Small deterministic PRNG, so a failing interleaving can be reproduced. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
