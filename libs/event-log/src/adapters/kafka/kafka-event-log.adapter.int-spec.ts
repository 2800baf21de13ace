import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ConfigResourceTypes, Kafka, logLevel, Partitioners, type PartitionMetadata } from 'kafkajs';
import { useKafka } from '../../../../../infra/provision';
import { ConsumerGroupBusyError, EventLogClosedError, InvalidTopicNameError } from '../../event-log.errors';
import { describeEventLogContract } from '../../event-log.contract';
import type { AppendRecord, StoredRecord, Subscription } from '../../event-log.port';
import { expectEventually } from '../../testing/expect-eventually';
import { syncHandler } from '../../testing/sync-handler';
import {
  KafkaEventLogAdapter,
  type KafkaEventLogAdapterOptions,
  type KafkaEventLogLogEntry,
} from './kafka-event-log.adapter';

/**
 * The EventLog contract against a real Kafka: KAFKA_BROKERS when set (the integration tier's
 * global setup sets it), else a single-node Kafka started here from infra/ (a few seconds).
 */
let kafka: { brokers: string; stop(): Promise<void> } | undefined;
/** kafkajs' warnings and errors, routed here by the adapters' `logger` option (kept out of the test output). */
const logs: KafkaEventLogLogEntry[] = [];

beforeAll(async () => {
  kafka = await useKafka({ log: () => undefined });
}, 120_000);

afterAll(async () => {
  await kafka?.stop();
});

/** Test-friendly timeouts: the broker's minimum session timeout, quick heartbeats and long-polls. */
const options = (topicPrefix: string): KafkaEventLogAdapterOptions => {
  if (!kafka) throw new Error('Kafka is not started');
  return {
    brokers: kafka.brokers.split(','),
    topicPrefix,
    clientId: 'herald-int',
    logLevel: 'warn',
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 500,
    rebalanceTimeoutMs: 10_000,
    maxWaitTimeMs: 200,
    transactionTimeoutMs: 30_000,
  };
};

const open = (topicPrefix: string, extra: Partial<KafkaEventLogAdapterOptions> = {}): KafkaEventLogAdapter =>
  new KafkaEventLogAdapter({ ...options(topicPrefix), logger: (entry) => logs.push(entry), ...extra });

describeEventLogContract('Kafka', {
  create: (prefix) => Promise.resolve(open(prefix)),
  childSpec: (prefix) => ({
    module: join(__dirname, 'kafka-event-log.adapter.ts'),
    exportName: KafkaEventLogAdapter.name,
    options: { ...options(prefix), logLevel: 'error' },
  }),
});

describe('KafkaEventLogAdapter (Kafka specifics)', () => {
  const TIMEOUT_MS = 60_000;
  let prefix = '';
  let adapters: KafkaEventLogAdapter[] = [];
  let subscriptions: Subscription[] = [];

  const adapter = (extra: Partial<KafkaEventLogAdapterOptions> = {}): KafkaEventLogAdapter => {
    const log = open(prefix, extra);
    adapters.push(log);
    return log;
  };
  const track = (subscription: Subscription): Subscription => {
    subscriptions.push(subscription);
    return subscription;
  };

  beforeEach(() => {
    prefix = `k${Date.now().toString(36)}${randomBytes(3).toString('hex')}.`;
  });
  afterEach(async () => {
    await Promise.allSettled(subscriptions.map((subscription) => subscription.stop()));
    await Promise.allSettled(adapters.map((log) => log.close()));
    subscriptions = [];
    adapters = [];
  });

  it(
    'creates topics with their spec (partitions, compaction, retention, log-append time) and never changes them',
    async () => {
      const log = adapter();
      await log.ensureTopics([
        { topic: 'spec-compacted', partitions: 3, compacted: true },
        { topic: 'spec-retained', partitions: 2, retentionMs: 3_600_000 },
      ]);
      await log.ensureTopics([{ topic: 'spec-compacted', partitions: 5 }]); // exists: left as it is
      expect(await log.endOffsets('spec-compacted')).toHaveLength(3);
      expect(await log.endOffsets('implicit')).toHaveLength(4); // defaultPartitions

      const admin = new Kafka({ brokers: options(prefix).brokers, logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      try {
        const { resources } = await admin.describeConfigs({
          includeSynonyms: false,
          resources: ['spec-compacted', 'spec-retained'].map((topic) => ({
            type: ConfigResourceTypes.TOPIC,
            name: `${prefix}${topic}`,
            configNames: ['cleanup.policy', 'retention.ms', 'message.timestamp.type'],
          })),
        });
        const configs = resources.map((resource) =>
          Object.fromEntries(resource.configEntries.map((entry) => [entry.configName, entry.configValue])),
        );
        expect(configs[0]).toMatchObject({ 'cleanup.policy': 'compact', 'message.timestamp.type': 'LogAppendTime' });
        expect(configs[1]).toMatchObject({ 'cleanup.policy': 'delete', 'retention.ms': '3600000' });
      } finally {
        await admin.disconnect();
      }
    },
    TIMEOUT_MS,
  );

  it(
    'rejects invalid topics, a second member of a group in one instance, and every call after close',
    async () => {
      const log = adapter();
      await expect(log.append([{ topic: 'not valid!', key: 'k', value: 'v' }])).rejects.toBeInstanceOf(
        InvalidTopicNameError,
      );
      await expect(log.ensureTopics([{ topic: '..' }])).rejects.toBeInstanceOf(InvalidTopicNameError);
      const member = track(
        await log.consume({ topics: ['busy'], group: 'solo', handler: syncHandler(() => undefined) }),
      );
      await expect(
        log.consume({ topics: ['busy'], group: 'solo', handler: syncHandler(() => undefined) }),
      ).rejects.toBeInstanceOf(ConsumerGroupBusyError);
      await member.stop();
      track(await log.consume({ topics: ['busy'], group: 'solo', handler: syncHandler(() => undefined) }));

      await log.close();
      await expect(log.append([{ topic: 'busy', key: 'k', value: 'v' }])).rejects.toBeInstanceOf(EventLogClosedError);
      await expect(log.read('busy', 0, 0, 1)).rejects.toBeInstanceOf(EventLogClosedError);
      await expect(log.endOffsets('busy')).rejects.toBeInstanceOf(EventLogClosedError);
      await expect(log.consume({ topics: ['busy'], handler: syncHandler(() => undefined) })).rejects.toBeInstanceOf(
        EventLogClosedError,
      );
    },
    TIMEOUT_MS,
  );

  it(
    "places keys where kafkajs' DefaultPartitioner puts them",
    async () => {
      const log = adapter();
      await log.ensureTopics([{ topic: 'placed', partitions: 7 }]);
      const partitionMetadata: PartitionMetadata[] = Array.from({ length: 7 }, (_, partitionId) => ({
        partitionErrorCode: 0,
        partitionId,
        leader: 1,
        replicas: [1],
        isr: [1],
      }));
      const kafkajsPartition = Partitioners.DefaultPartitioner();
      for (let i = 0; i < 200; i++) {
        const key = `agent-${i}-é`;
        expect({ key, partition: await log.partitionFor('placed', key) }).toEqual({
          key,
          partition: kafkajsPartition({ topic: 'placed', partitionMetadata, message: { key, value: null } }),
        });
      }
    },
    TIMEOUT_MS,
  );

  it(
    'never shows the outputs of an aborted consume-transform-produce transaction to read_committed readers',
    async () => {
      // maxRecordBytes above the broker's message.max.bytes (1 MiB): the oversized output is sent
      // (in a second produce request of the transaction, after the valid outputs were written) and
      // refused by the broker, so the transaction is aborted with records already in the log.
      const log = adapter({ maxRecordBytes: 2_000_000 });
      await log.ensureTopics([
        { topic: 'abort-in', partitions: 1 },
        { topic: 'abort-out', partitions: 2 },
      ]);
      const inputs = range(10).map((i) => ({ topic: 'abort-in', key: 'agent-1', value: `${i}` }));
      await log.append(inputs);

      let calls = 0;
      const errors: unknown[] = [];
      const transform = (batch: StoredRecord[]): AppendRecord[] =>
        batch.map((record) => ({ topic: 'abort-out', key: record.key, value: `out:${record.value}` }));
      const member = track(
        await log.consume({
          topics: ['abort-in'],
          group: 'aborters',
          handler: syncHandler((batch) => {
            calls++;
            if (calls === 1) {
              return {
                append: [...transform(batch), { topic: 'abort-out', key: 'big', value: 'x'.repeat(1_200_000) }],
              };
            }
            return { append: transform(batch) };
          }),
          onError: (error) => errors.push(error),
        }),
      );
      await member.caughtUp();

      expect(calls).toBeGreaterThanOrEqual(2);
      expect(errors.length).toBeGreaterThanOrEqual(1);
      // kafkajs' own log entries reach the `logger` option (and its partitioner notice never shows).
      expect(logs.some((entry) => entry.level === 'error' && /max message size/.test(entry.message))).toBe(true);
      expect(logs.some((entry) => /partitioner/i.test(entry.message))).toBe(false);
      const expected = inputs.map((record) => `out:${record.value}`);
      const outputs = await readTopic(log, 'abort-out');
      expect(outputs.map((record) => record.value)).toEqual(expected);

      // The aborted outputs (and the transaction markers) are in the log: they take offsets.
      const outputPartition = await log.partitionFor('abort-out', 'agent-1');
      const end = (await log.endOffsets('abort-out')).find((candidate) => candidate.partition === outputPartition);
      expect(end?.offset).toBeGreaterThan(2 * inputs.length);

      // A read_committed consumer from the beginning sees the committed outputs only.
      const seen: string[] = [];
      const reader = track(
        await log.consume({
          topics: ['abort-out'],
          handler: syncHandler((batch) => {
            seen.push(...batch.map((record) => record.value));
          }),
        }),
      );
      await reader.caughtUp();
      expect(seen).toEqual(expected);
    },
    TIMEOUT_MS,
  );

  it(
    "starts an ephemeral consumer from 'end' at the last stable offset: a transaction open at that time is delivered once committed",
    async () => {
      const log = adapter({ readStableWaitMs: 300 });
      await log.ensureTopics([{ topic: 'open-tx', partitions: 1 }]);
      await log.append([{ topic: 'open-tx', key: 'k', value: 'before' }]);
      const client = new Kafka({ brokers: options(prefix).brokers, logLevel: logLevel.NOTHING });
      const producer = client.producer({
        transactionalId: `${prefix}test-tx`,
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      try {
        const transaction = await producer.transaction();
        await transaction.send({ topic: `${prefix}open-tx`, messages: [{ key: 'k', value: 'in-open-transaction' }] });

        const seen: string[] = [];
        const tail = track(
          await log.consume({
            topics: ['open-tx'],
            from: 'end',
            handler: syncHandler((batch) => {
              seen.push(...batch.map((record) => record.value));
            }),
          }),
        );
        const [end] = await log.endOffsets('open-tx');
        expect(end?.offset).toBe(2); // the high watermark counts the open transaction's record
        // read waits a little for the transaction to complete, then returns what is committed.
        expect((await log.read('open-tx', 0, 0, 10)).map((record) => record.value)).toEqual(['before']);
        await transaction.commit();
        await expectEventually(() => expect(seen).toEqual(['in-open-transaction']));
        await tail.caughtUp();
      } finally {
        await producer.disconnect();
      }
    },
    TIMEOUT_MS,
  );

  it(
    'fences a member that lost its partition while its handler ran (zombie): its outputs are never committed',
    async () => {
      // A short rebalance timeout: the blocked member is dropped from the group after 3 s.
      const zombie = adapter({ rebalanceTimeoutMs: 3_000 });
      const successor = adapter({ rebalanceTimeoutMs: 3_000 });
      await zombie.ensureTopics([
        { topic: 'zombie-in', partitions: 1 },
        { topic: 'zombie-out', partitions: 1 },
      ]);
      const inputs = range(20).map((i) => ({ topic: 'zombie-in', key: `agent-${i % 3}`, value: `${i}` }));
      await zombie.append(inputs);
      const transform = (batch: StoredRecord[]): AppendRecord[] =>
        batch.map((record) => ({ topic: 'zombie-out', key: record.key, value: `out:${record.value}` }));

      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let blocked = false;
      const zombieErrors: unknown[] = [];
      track(
        await zombie.consume({
          topics: ['zombie-in'],
          group: 'zombies',
          maxBatchSize: 5,
          handler: async (batch) => {
            if (!blocked) {
              blocked = true;
              await gate; // stuck while the group moves on without this member
            }
            return { append: transform(batch) };
          },
          onError: (error) => zombieErrors.push(error),
        }),
      );
      await expectEventually(() => expect(blocked).toBe(true));

      const successorMember = track(
        await successor.consume({
          topics: ['zombie-in'],
          group: 'zombies',
          maxBatchSize: 5,
          handler: syncHandler((batch) => ({ append: transform(batch) })),
        }),
      );
      await successorMember.caughtUp();
      release(); // the zombie's handler returns: its transaction must fail (fenced)
      await expectEventually(() => expect(zombieErrors.length).toBeGreaterThanOrEqual(1), 15_000);
      // The successor's InitProducerId for the partition's transactional id bumped the epoch.
      const fencedType = (zombieErrors[0] as { type?: unknown } | undefined)?.type;
      expect(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED']).toContain(fencedType);
      await successorMember.caughtUp();

      const outputs = await readTopic(successor, 'zombie-out');
      expect(outputs.map((record) => record.value).sort()).toEqual(
        inputs.map((record) => `out:${record.value}`).sort(),
      );
    },
    TIMEOUT_MS,
  );

  it(
    'hands partitions over between instances of one group (rebalance) with exactly one output per input',
    async () => {
      const first = adapter();
      const second = adapter();
      await first.ensureTopics([
        { topic: 'moving-in', partitions: 4 },
        { topic: 'moving-out', partitions: 2 },
      ]);
      const inputs: AppendRecord[] = [];
      const appendInputs = async (count: number): Promise<void> => {
        const records = range(count).map((i) => {
          const n = inputs.length + i;
          return { topic: 'moving-in', key: `agent-${n % 12}`, value: `${n}` };
        });
        inputs.push(...records);
        await first.append(records);
      };
      const handled = { first: 0, second: 0 };
      const member = (name: keyof typeof handled): Parameters<KafkaEventLogAdapter['consume']>[0] => ({
        topics: ['moving-in'],
        group: 'movers',
        maxBatchSize: 10,
        handler: async (batch) => {
          handled[name] += batch.length;
          await new Promise((resolve) => setTimeout(resolve, 5));
          return {
            append: batch.map((record) => ({ topic: 'moving-out', key: record.key, value: `out:${record.value}` })),
          };
        },
      });

      await appendInputs(200);
      const firstMember = track(await first.consume(member('first')));
      await expectEventually(() => expect(handled.first).toBeGreaterThanOrEqual(40), 15_000);
      const secondMember = track(await second.consume(member('second'))); // joins: the partitions are split
      await appendInputs(200);
      await expectEventually(() => expect(handled.second).toBeGreaterThan(0), 15_000);
      await firstMember.stop(); // leaves: the second member takes every partition
      await appendInputs(100);
      await secondMember.caughtUp();

      const outputs = await readTopic(second, 'moving-out');
      expect(outputs.map((record) => record.value).sort()).toEqual(
        inputs.map((record) => `out:${record.value}`).sort(),
      );
      for (const key of new Set(inputs.map((record) => record.key))) {
        expect(outputs.filter((record) => record.key === key).map((record) => record.value)).toEqual(
          inputs.filter((record) => record.key === key).map((record) => `out:${record.value}`),
        );
      }
    },
    TIMEOUT_MS,
  );
});

async function readTopic(log: KafkaEventLogAdapter, topic: string): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  for (const end of await log.endOffsets(topic)) {
    let from = 0;
    while (from < end.offset) {
      const page = await log.read(topic, end.partition, from, 5_000);
      const last = page[page.length - 1];
      if (!last) break;
      records.push(...page.filter((record) => record.offset < end.offset));
      from = last.offset + 1;
    }
  }
  return records;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
