import { Topics } from '@herald/contracts';
import type { EventLog, StoredRecord } from './event-log.port';

/**
 * Sends a record that failed parsing to the dead-letter topic with the reason. Consumers call
 * this instead of crashing; the record's original position is kept for investigation.
 */
export async function deadLetter(log: EventLog, record: StoredRecord, reason: string, consumer: string): Promise<void> {
  await log.append([
    {
      topic: Topics.deadLetter,
      key: record.key,
      value: JSON.stringify({
        consumer,
        reason,
        source: { topic: record.topic, partition: record.partition, offset: record.offset },
        key: record.key,
        value: record.value.length > 65536 ? `${record.value.slice(0, 65536)}…` : record.value,
        failedAt: new Date().toISOString(),
      }),
    },
  ]);
}
