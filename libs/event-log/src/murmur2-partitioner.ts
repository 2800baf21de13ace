/**
 * Kafka's default key partitioner: `toPositive(murmur2(utf8(key))) % partitions`, the algorithm of
 * the Java client (`Utils.murmur2`, `BuiltInPartitioner.partitionForKey`) and of kafkajs'
 * `DefaultPartitioner`. Every EventLog adapter places a key with it, so an agent's records land
 * in the same partition number on the embedded and the Kafka backend.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 (32-bit, seed 0x9747b28c) of the UTF-8 bytes of `key`, as a signed 32-bit int. */
export function murmur2(key: string | Uint8Array): number {
  const data = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  const length = data.length;
  let h = (SEED ^ length) | 0;

  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = (data[i] ?? 0) | ((data[i + 1] ?? 0) << 8) | ((data[i + 2] ?? 0) << 16) | ((data[i + 3] ?? 0) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }

  // The tail (Java's switch with fall-through).
  const rest = length & 3;
  if (rest === 3) h ^= (data[whole + 2] ?? 0) << 16;
  if (rest >= 2) h ^= (data[whole + 1] ?? 0) << 8;
  if (rest >= 1) {
    h ^= data[whole] ?? 0;
    h = Math.imul(h, M);
  }

  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * The part of a record key that chooses its partition: everything before the first `/`. Facets of
 * one entity (`<uuid>`, `<uuid>/groups`, `<uuid>/presence` in the compacted `agents` topic) are
 * compacted separately but stay in one partition, in order.
 */
export function partitionKeyOf(key: string): string {
  const slash = key.indexOf('/');
  return slash < 0 ? key : key.slice(0, slash);
}

/**
 * The partition of `key` among `partitions`: Kafka's default partitioner (murmur2) applied to
 * `partitionKeyOf(key)`. For keys without `/` this is exactly what kafkajs and the Java client pick.
 */
export function partitionForKey(key: string, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new RangeError(`partitions must be a positive integer, got ${String(partitions)}`);
  }
  return (murmur2(partitionKeyOf(key)) & 0x7fffffff) % partitions;
}
