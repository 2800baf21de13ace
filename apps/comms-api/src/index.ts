export * from './comms-api.module';
export * from './stream.gateway';
export * from './command-feed';
export * from './command-backlog';
