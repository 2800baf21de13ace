import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  ConsumerGroupBusyError,
  EventLogClosedError,
  InvalidTopicNameError,
  OffsetCommitConflictError,
  SubscriptionStoppedError,
} from '../../event-log.errors';
import { describeEventLogContract } from '../../event-log.contract';
import type { Subscription } from '../../event-log.port';
import { expectEventually } from '../../testing/expect-eventually';
import { syncHandler } from '../../testing/sync-handler';
import { SqliteEventLogAdapter, type SqliteEventLogAdapterOptions } from './sqlite-event-log.adapter';

const dir = mkdtempSync(join(tmpdir(), 'herald-event-log-'));
const dbPath = join(dir, 'event-log.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const noop = syncHandler(() => undefined);

const options = (topicPrefix: string): SqliteEventLogAdapterOptions => ({
  path: dbPath,
  topicPrefix,
  pollIntervalMs: 20,
});

describeEventLogContract('embedded SQLite', {
  create: (prefix) => Promise.resolve(new SqliteEventLogAdapter(options(prefix))),
  childSpec: (prefix) => ({
    module: join(__dirname, 'sqlite-event-log.adapter.ts'),
    exportName: SqliteEventLogAdapter.name,
    options: options(prefix),
  }),
});

describe('SqliteEventLogAdapter', () => {
  let testNumber = 0;
  let prefix = '';
  let adapters: SqliteEventLogAdapter[] = [];
  let subscriptions: Subscription[] = [];

  const open = (extra: Partial<SqliteEventLogAdapterOptions> = {}): SqliteEventLogAdapter => {
    const adapter = new SqliteEventLogAdapter({ ...options(prefix), ...extra });
    adapters.push(adapter);
    return adapter;
  };
  const track = (subscription: Subscription): Subscription => {
    subscriptions.push(subscription);
    return subscription;
  };

  beforeEach(() => {
    prefix = `unit${++testNumber}.`;
  });
  afterEach(async () => {
    await Promise.allSettled(subscriptions.map((subscription) => subscription.stop()));
    await Promise.allSettled(adapters.map((adapter) => adapter.close()));
    subscriptions = [];
    adapters = [];
  });

  it('assigns dense offsets from 0 per partition, and continues them after a reopen', async () => {
    const first = open();
    await first.ensureTopics([{ topic: 'dense', partitions: 3 }]);
    const records = Array.from({ length: 40 }, (_, i) => ({ topic: 'dense', key: `k${i % 9}`, value: `${i}` }));
    const positions = [...(await first.append(records.slice(0, 20))), ...(await first.append(records.slice(20, 30)))];
    await first.close();
    const second = open();
    positions.push(...(await second.append(records.slice(30))));

    const perPartition = new Map<number, number[]>();
    for (const position of positions) {
      perPartition.set(position.partition, [...(perPartition.get(position.partition) ?? []), position.offset]);
    }
    for (const [partition, offsets] of perPartition) {
      expect({ partition, offsets }).toEqual({ partition, offsets: offsets.map((_, i) => i) });
    }
    expect(await second.endOffsets('dense')).toEqual(
      [0, 1, 2].map((partition) => ({ topic: 'dense', partition, offset: perPartition.get(partition)?.length ?? 0 })),
    );
  });

  it('places keys with Kafka’s murmur2 partitioner', async () => {
    const adapter = open();
    await adapter.ensureTopics([{ topic: 'kafka-compatible', partitions: 4 }]);
    // Kafka: murmur2("21") = -973932308; toPositive(...) % 4
    const expected = (-973932308 & 0x7fffffff) % 4;
    expect(await adapter.partitionFor('kafka-compatible', '21')).toBe(expected);
    const [position] = await adapter.append([{ topic: 'kafka-compatible', key: '21', value: 'v' }]);
    expect(position?.partition).toBe(expected);
  });

  it('rejects invalid topic names and prefixes with a clear error', async () => {
    const adapter = open();
    for (const bad of ['', 'has space', 'slash/ed', 'quote"d', 'ünïcode', '.', '..', 'x'.repeat(250)]) {
      await expect(adapter.append([{ topic: bad, key: 'k', value: 'v' }])).rejects.toThrow(InvalidTopicNameError);
      await expect(adapter.ensureTopics([{ topic: bad }])).rejects.toThrow(/Invalid topic name/);
      await expect(adapter.endOffsets(bad)).rejects.toThrow(InvalidTopicNameError);
      await expect(adapter.consume({ topics: [bad], handler: noop })).rejects.toThrow(InvalidTopicNameError);
    }
    expect(() => new SqliteEventLogAdapter({ path: dbPath, topicPrefix: 'bad prefix' })).toThrow(InvalidTopicNameError);
    // An invalid record anywhere in the call rejects the whole call: nothing is appended.
    await expect(
      adapter.append([
        { topic: 'valid', key: 'k', value: 'v' },
        { topic: 'in valid', key: 'k', value: 'v' },
      ]),
    ).rejects.toThrow(InvalidTopicNameError);
    expect((await adapter.endOffsets('valid')).every((end) => end.offset === 0)).toBe(true);
  });

  it('keeps topics that differ only in case or punctuation apart', async () => {
    const adapter = open();
    await adapter.append([
      { topic: 'Orders', key: 'k', value: 'upper' },
      { topic: 'orders', key: 'k', value: 'lower' },
      { topic: 'a.b', key: 'k', value: 'dot' },
      { topic: 'a_b', key: 'k', value: 'underscore' },
      { topic: 'a-b', key: 'k', value: 'dash' },
    ]);
    for (const [topic, value] of [
      ['Orders', 'upper'],
      ['orders', 'lower'],
      ['a.b', 'dot'],
      ['a_b', 'underscore'],
      ['a-b', 'dash'],
    ] as const) {
      const partition = await adapter.partitionFor(topic, 'k');
      expect((await adapter.read(topic, partition, 0, 10)).map((record) => record.value)).toEqual([value]);
    }
  });

  it('creates unknown topics with defaultPartitions and never changes an existing topic', async () => {
    const adapter = open({ defaultPartitions: 6 });
    await adapter.append([{ topic: 'implicit', key: 'k', value: 'v' }]);
    expect(await adapter.endOffsets('implicit')).toHaveLength(6);
    await adapter.ensureTopics([{ topic: 'implicit', partitions: 2 }]);
    expect(await adapter.endOffsets('implicit')).toHaveLength(6);
    await expect(adapter.read('implicit', 6, 0, 1)).rejects.toThrow(/partitions 0\.\.5/);
    await expect(adapter.read('implicit', 0, -1, 1)).rejects.toThrow(/fromOffset/);
  });

  it('group-commits concurrent appends into one transaction', async () => {
    const adapter = open();
    await adapter.ensureTopics([{ topic: 'group-commit', partitions: 4 }]);
    const calls = Array.from({ length: 500 }, (_, i) =>
      adapter.append([{ topic: 'group-commit', key: `k${i % 13}`, value: `${i}` }]),
    );
    const positions = (await Promise.all(calls)).flat();
    expect(positions).toHaveLength(500);
    const records = (
      await Promise.all([0, 1, 2, 3].map((partition) => adapter.read('group-commit', partition, 0, 1_000)))
    ).flat();
    // One transaction stamps one timestamp on all its records.
    expect(new Set(records.map((record) => record.timestamp)).size).toBe(1);
    // Call order is append order within the shared transaction.
    for (let i = 1; i < 500; i++) {
      const previous = positions[i - 1];
      const current = positions[i];
      if (previous && current && previous.partition === current.partition) {
        expect(current.offset).toBe(previous.offset + 1);
      }
    }
  });

  it('rejects every caller of a failing commit and writes none of their records', async () => {
    const adapter = open();
    await adapter.ensureTopics([{ topic: 'poisoned', partitions: 1 }]);
    // Make the storage fail on one value, from a second connection (as a full disk would).
    const raw = new Database(dbPath);
    try {
      const table = raw
        .prepare<[string], { table_name: string }>('SELECT table_name FROM herald_topics WHERE name = ?')
        .get(`${prefix}poisoned`)?.table_name;
      expect(table).toBeDefined();
      raw.exec(
        `CREATE TRIGGER poison_${testNumber} BEFORE INSERT ON "${table}" WHEN NEW.value = 'poison' ` +
          `BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`,
      );
    } finally {
      raw.close();
    }
    const results = await Promise.allSettled([
      adapter.append([{ topic: 'poisoned', key: 'a', value: 'fine-1' }]),
      adapter.append([{ topic: 'poisoned', key: 'b', value: 'poison' }]),
      adapter.append([{ topic: 'poisoned', key: 'c', value: 'fine-2' }]),
    ]);
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(results[0]?.status === 'rejected' && String(results[0].reason)).toMatch(/disk on fire/);
    expect(await adapter.read('poisoned', 0, 0, 10)).toEqual([]);
    // The adapter keeps working for later commits.
    expect(await adapter.append([{ topic: 'poisoned', key: 'a', value: 'fine-3' }])).toEqual([
      { topic: 'poisoned', partition: 0, offset: 0 },
    ]);
  });

  it('allows one active member per consumer group per adapter instance', async () => {
    const adapter = open();
    const handler = noop;
    const first = track(await adapter.consume({ topics: ['members'], group: 'solo', handler }));
    await expect(adapter.consume({ topics: ['members'], group: 'solo', handler })).rejects.toThrow(
      ConsumerGroupBusyError,
    );
    await expect(adapter.consume({ topics: ['other'], group: 'solo', handler })).rejects.toThrow(/single-node/);
    track(await adapter.consume({ topics: ['members'], group: 'another-group', handler }));
    track(await adapter.consume({ topics: ['members'], handler })); // ephemeral: no group, no limit
    await first.stop();
    track(await adapter.consume({ topics: ['members'], group: 'solo', handler }));
  });

  it('retries exactly the failed batch, with backoff, until the handler succeeds', async () => {
    const adapter = open();
    await adapter.ensureTopics([{ topic: 'flaky', partitions: 3 }]);
    await adapter.append(Array.from({ length: 30 }, (_, i) => ({ topic: 'flaky', key: `k${i}`, value: `${i}` })));
    const deliveries: string[][] = [];
    const errorTimes: number[] = [];
    track(
      await adapter.consume({
        topics: ['flaky'],
        group: 'flaky-readers',
        maxBatchSize: 4,
        handler: syncHandler((batch) => {
          deliveries.push(batch.map((record) => `${record.partition}/${record.offset}`));
          if (deliveries.length >= 2 && deliveries.length <= 4) throw new Error(`failure ${deliveries.length}`);
        }),
        onError: () => errorTimes.push(Date.now()),
      }),
    );
    await expectEventually(() => expect(new Set(deliveries.flat()).size).toBe(30));
    expect(deliveries[2]).toEqual(deliveries[1]);
    expect(deliveries[3]).toEqual(deliveries[1]);
    expect(deliveries[4]).toEqual(deliveries[1]);
    const [t1, t2, t3] = errorTimes;
    expect(errorTimes).toHaveLength(3);
    expect((t2 ?? 0) - (t1 ?? 0)).toBeGreaterThanOrEqual(90);
    expect((t3 ?? 0) - (t2 ?? 0)).toBeGreaterThanOrEqual(190);
  });

  it("pins from: 'end' for a group at its first start", async () => {
    const adapter = open();
    await adapter.append([{ topic: 'pinned', key: 'k', value: 'before' }]);
    const seen: string[] = [];
    const handler = syncHandler((batch) => {
      seen.push(...batch.map((record) => record.value));
    });
    const first = await adapter.consume({ topics: ['pinned'], group: 'late-joiners', from: 'end', handler });
    await first.stop();
    await adapter.append([{ topic: 'pinned', key: 'k', value: 'while-stopped' }]);
    const second = track(await adapter.consume({ topics: ['pinned'], group: 'late-joiners', from: 'end', handler }));
    await second.caughtUp();
    expect(seen).toEqual(['while-stopped']);
  });

  it('sees records appended through another connection (polling)', async () => {
    const reader = open();
    const writer = open();
    const seen: string[] = [];
    track(
      await reader.consume({
        topics: ['cross'],
        handler: syncHandler((batch) => {
          seen.push(...batch.map((record) => record.value));
        }),
      }),
    );
    await writer.append([{ topic: 'cross', key: 'k', value: 'from-the-other-connection' }]);
    await expectEventually(() => expect(seen).toEqual(['from-the-other-connection']), 2_000);
  });

  it('keeps outputs exactly-once when two instances consume the same group (offset compare-and-set)', async () => {
    const one = open();
    const two = open();
    await one.ensureTopics([{ topic: 'contended', partitions: 2 }]);
    await one.append(Array.from({ length: 200 }, (_, i) => ({ topic: 'contended', key: `k${i % 7}`, value: `${i}` })));
    const conflicts: unknown[] = [];
    const member = async (adapter: SqliteEventLogAdapter): Promise<Subscription> =>
      track(
        await adapter.consume({
          topics: ['contended'],
          group: 'contenders',
          maxBatchSize: 10,
          handler: async (batch) => {
            await new Promise<void>((resolve) => setTimeout(resolve, 2));
            return {
              append: batch.map((record) => ({ topic: 'contended-out', key: record.key, value: record.value })),
            };
          },
          onError: (error) => conflicts.push(error),
        }),
      );
    const [a, b] = await Promise.all([member(one), member(two)]);
    await a?.caughtUp();
    await b?.caughtUp();
    const outputs = (
      await Promise.all(
        (await one.endOffsets('contended-out')).map((end) => one.read('contended-out', end.partition, 0, 1_000)),
      )
    ).flat();
    expect(outputs.map((record) => Number(record.value)).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 200 }, (_, i) => i),
    );
    expect(conflicts.every((error) => error instanceof OffsetCommitConflictError)).toBe(true);
  });

  describe('close', () => {
    it('waits for the in-flight batch, commits it, then rejects every call', async () => {
      const adapter = open();
      await adapter.append(Array.from({ length: 10 }, (_, i) => ({ topic: 'closing', key: 'k', value: `${i}` })));
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let inFlight = false;
      const subscription = await adapter.consume({
        topics: ['closing'],
        group: 'closers',
        maxBatchSize: 3,
        handler: async (batch) => {
          inFlight = true;
          await gate;
          return { append: batch.map((record) => ({ topic: 'closing-out', key: 'k', value: record.value })) };
        },
      });
      await expectEventually(() => expect(inFlight).toBe(true));
      const closed = adapter.close();
      await expect(adapter.append([{ topic: 'closing', key: 'k', value: 'late' }])).rejects.toThrow(
        EventLogClosedError,
      );
      release();
      await closed;
      await expect(adapter.close()).resolves.toBeUndefined();
      await expect(subscription.stop()).resolves.toBeUndefined();
      await expect(subscription.caughtUp()).rejects.toThrow(SubscriptionStoppedError);
      await expect(adapter.read('closing', 0, 0, 1)).rejects.toThrow(/is closed/);
      await expect(adapter.endOffsets('closing')).rejects.toThrow(EventLogClosedError);
      await expect(adapter.partitionFor('closing', 'k')).rejects.toThrow(EventLogClosedError);
      await expect(adapter.ensureTopics([{ topic: 'closing' }])).rejects.toThrow(EventLogClosedError);
      await expect(adapter.consume({ topics: ['closing'], handler: noop })).rejects.toThrow(EventLogClosedError);

      const reopened = open();
      const partition = await reopened.partitionFor('closing-out', 'k');
      expect((await reopened.read('closing-out', partition, 0, 10)).map((record) => record.value)).toEqual([
        '0',
        '1',
        '2',
      ]);
      // The batch's offsets were committed with its outputs: the group resumes at 3.
      const seen: string[] = [];
      const resumed = track(
        await reopened.consume({
          topics: ['closing'],
          group: 'closers',
          handler: syncHandler((batch) => {
            seen.push(...batch.map((record) => record.value));
          }),
        }),
      );
      await resumed.caughtUp();
      expect(seen).toEqual(['3', '4', '5', '6', '7', '8', '9']);
    });

    it('writes appends queued before close', async () => {
      const adapter = open();
      const pending = adapter.append([{ topic: 'queued', key: 'k', value: 'v' }]);
      await adapter.close();
      await expect(pending).resolves.toHaveLength(1);
      const reopened = open();
      expect(await reopened.read('queued', await reopened.partitionFor('queued', 'k'), 0, 1)).toHaveLength(1);
    });
  });
});
