/**
 * Domain errors: small classes with a stable `code` (one global filter in each app maps codes to
 * HTTP status / WebSocket close codes / dead-letter reasons).
 *
 * `decide` never throws for a bad claim or request: those become `CommandClaimIgnored` events.
 * `evolve` / `fold` throw a `CommandLogCorruptError` when the `commands` log itself is
 * inconsistent (a seq gap, a transition `decide` could never have produced): the orchestrator
 * must stop and alert rather than build on a corrupt stream.
 */
export abstract class DomainError extends Error {
  abstract readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The `commands` stream of an agent is inconsistent. */
export abstract class CommandLogCorruptError extends DomainError {
  constructor(
    readonly agentUuid: string,
    message: string,
  ) {
    super(`commands log of agent ${agentUuid} is corrupt: ${message}`);
  }
}

/** A `CommandIssued` whose seq is not `lastSeq + 1` (a gap, a repeat or a reordering). */
export class CommandSeqOutOfOrderError extends CommandLogCorruptError {
  override readonly code = 'command_seq_out_of_order';

  constructor(
    agentUuid: string,
    readonly commandId: string,
    readonly expectedSeq: number,
    readonly actualSeq: number,
  ) {
    super(agentUuid, `CommandIssued ${commandId} has seq ${actualSeq}, expected ${expectedSeq}`);
  }
}

/** A `CommandIssued` for a command id that was already issued. */
export class CommandAlreadyIssuedError extends CommandLogCorruptError {
  override readonly code = 'command_already_issued';

  constructor(
    agentUuid: string,
    readonly commandId: string,
  ) {
    super(agentUuid, `command ${commandId} is issued twice`);
  }
}

/** A `CommandIssued` for another agent in this agent's stream. */
export class CommandAgentMismatchError extends CommandLogCorruptError {
  override readonly code = 'command_agent_mismatch';

  constructor(
    agentUuid: string,
    readonly commandId: string,
    readonly commandAgentUuid: string,
  ) {
    super(agentUuid, `command ${commandId} belongs to agent ${commandAgentUuid}`);
  }
}

/** A lifecycle event for a command that was never issued in this stream. */
export class UnknownCommandError extends CommandLogCorruptError {
  override readonly code = 'command_unknown';

  constructor(
    agentUuid: string,
    readonly commandId: string,
    readonly eventType: string,
  ) {
    super(agentUuid, `${eventType} for unknown command ${commandId}`);
  }
}

/** A lifecycle event whose seq differs from the seq its command was issued with. */
export class CommandSeqMismatchError extends CommandLogCorruptError {
  override readonly code = 'command_seq_mismatch';

  constructor(
    agentUuid: string,
    readonly commandId: string,
    readonly eventType: string,
    readonly expectedSeq: number,
    readonly actualSeq: number,
  ) {
    super(agentUuid, `${eventType} for command ${commandId} has seq ${actualSeq}, the command has seq ${expectedSeq}`);
  }
}

/** A lifecycle event that is not a legal transition from the command's current status. */
export class IllegalTransitionError extends CommandLogCorruptError {
  override readonly code = 'command_illegal_transition';

  constructor(
    agentUuid: string,
    readonly commandId: string,
    readonly from: string,
    readonly eventType: string,
  ) {
    super(agentUuid, `${eventType} is not legal for command ${commandId} in status ${from}`);
  }
}

/** `fold` was given no events and no agent: there is nothing to name the state after. */
export class FoldWithoutAgentError extends DomainError {
  override readonly code = 'fold_without_agent';

  constructor() {
    super('fold needs an agent uuid (or a start state) when the first event is not CommandIssued');
  }
}
