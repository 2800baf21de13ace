export * from './ids';
export * from './topics';
export * from './envelope.schema';
export * from './command.schema';
export * from './events.schema';
export * from './protocol.schema';
export * from './indices';
export * from './actions';
