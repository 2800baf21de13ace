export * from './event-log.port';
export * from './event-log.errors';
export * from './dead-letter';
export { murmur2, partitionForKey, partitionKeyOf } from './murmur2-partitioner';
export { SqliteEventLogAdapter, type SqliteEventLogAdapterOptions } from './adapters/embedded/sqlite-event-log.adapter';
// The contract suite (`describeEventLogContract`, `EventLogContractFactory`) is deliberately NOT
// re-exported here: it needs Jest's globals, and tsconfig.build.json keeps `*.contract.ts` out of
// the production build. Adapter specs import it from './event-log.contract'.
export * from './adapters/kafka/kafka-event-log.adapter';
