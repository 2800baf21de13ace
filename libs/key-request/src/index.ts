export * from './key-request.errors';
export * from './key-request.schema';
export * from './key-request.service';
export { KeySourceError, MAX_OUTPUT_BYTES, ProgramKeySource, type SourceOutput } from './program-key-source';
export { SocketKeySource } from './socket-key-source';
export * from './key-request-enrollment';
