export { Agent, AgentConfigError, silentLogger, streamUrlOf } from './agent';
export type { AgentEvents, AgentLogger, AgentOptions, AgentRunResult, CommandInfo } from './agent';
export { CommandStore, STORE_FILE } from './command-store';
export type {
  AgentIdentity,
  CancelOutcome,
  CommandState,
  CommandStoreOptions,
  ReceiveOutcome,
  StoredCommand,
  StoredResult,
} from './command-store';
export {
  authenticate,
  DEFAULT_COMMS_URL,
  DEFAULT_MANAGER_URL,
  enroll,
  EnrollmentError,
  generateKey,
  hostInfo,
  jwtExpiry,
  readCaFile,
} from './enrollment';
export type { AgentToken, EnrollOptions, EnrollResult, HostInfo, TlsOptions } from './enrollment';
export {
  AGENT_VERSION,
  builtInActions,
  codeFor,
  done,
  Executors,
  INTERRUPTED_MESSAGE,
  ResultCodes,
  toResult,
} from './executors';
export type { ActionDefinition, ActionDefinitions, ExecutionContext, ExecutorOutcome } from './executors';
export { commandDocumentSchema, serverFrameSchema, serverFrameSchemas } from './server-frame.schema';
export type { CommandFrame, ParsedServerFrame } from './server-frame.schema';
export { EXIT_FAILURE, EXIT_OK, EXIT_RESTART, EXIT_USAGE, runCli } from './cli';
export type { CliContext, CliIo } from './cli';
