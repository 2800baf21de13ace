/**
 * The command lifecycle of ONE agent as pure functions (emmett style):
 *
 *   decide(state, input) -> CommandEvent[]   what should happen (never throws for bad claims)
 *   evolve(state, event) -> state            what did happen (throws on a corrupt log)
 *
 * The orchestrator, single writer of the agent's `commands` stream, runs
 * `events = decide(state, input)`, appends `events` durably, then `state = fold(events, state)`.
 * Rebuilding is `fold(eventsFromTheLog, agentUuid)`.
 *
 * State is immutable: `evolve`, `fold(events, state)` and `compact` never mutate their input;
 * they copy the agent's command map once per call (so `fold` of a batch costs one copy, not
 * one per event) and share the unchanged `CommandState` objects with the previous state.
 *
 * Ordering: the `commands` map is kept in issue order, which (checked by evolve) is seq order,
 * so iterating it yields commands by ascending seq.
 */
import {
  TERMINAL_STATUSES,
  type AgentResultStatus,
  type CancelRequested,
  type Command,
  type CommandAcknowledged,
  type CommandDelivered,
  type CommandEvent,
  type CommandEventType,
  type CommandRequested,
  type CommandResult,
  type CommandResultReported,
  type CommandStatus,
} from '@herald/contracts';
import {
  CommandAgentMismatchError,
  CommandAlreadyIssuedError,
  CommandSeqMismatchError,
  CommandSeqOutOfOrderError,
  FoldWithoutAgentError,
  IllegalTransitionError,
  UnknownCommandError,
} from './domain.errors';

/* ------------------------------------------------------------------ state ---------------- */

export type TerminalStatus = 'success' | 'failure' | 'timed_out' | 'expired' | 'cancelled' | 'rejected';
export type ActiveStatus = Exclude<CommandStatus, TerminalStatus>;

/** A command with everything needed to decide and to project it. Timestamps are the ISO strings of the events. */
export interface LiveCommandState {
  readonly command: Command;
  readonly status: CommandStatus;
  /** `CommandSent.at` (absent if the agent acknowledged before the delivery was reported). */
  readonly sentAt?: string;
  /** `CommandInProgress.at`. */
  readonly inProgressAt?: string;
  /** `at` of the terminal event. */
  readonly finishedAt?: string;
  readonly result?: CommandResult;
  /** How many claims about this command were recorded as `CommandClaimIgnored`. */
  readonly ignoredClaims?: number;
}

/**
 * A terminal command reduced to what deciding still needs: its status (duplicate vs late
 * claims) and seq (seq-mismatch checks). Its id stays in the map, so a duplicate request
 * still never issues twice. See `compact`.
 */
export interface CompactedCommandState {
  readonly status: TerminalStatus;
  readonly seq: number;
}

export type CommandState = LiveCommandState | CompactedCommandState;

export interface AgentCommandState {
  readonly agentUuid: string;
  /** Seq of the last `CommandIssued` (0 before the first): the next command gets `lastSeq + 1`. */
  readonly lastSeq: number;
  /** By command id, in issue (= seq) order. */
  readonly commands: ReadonlyMap<string, CommandState>;
}

export function initialState(agentUuid: string): AgentCommandState {
  return { agentUuid, lastSeq: 0, commands: new Map() };
}

export function isLive(entry: CommandState): entry is LiveCommandState {
  return 'command' in entry;
}

export function isTerminalStatus(status: CommandStatus): status is TerminalStatus {
  return TERMINAL_STATUSES.has(status);
}

export function seqOf(entry: CommandState): number {
  return isLive(entry) ? entry.command.seq : entry.seq;
}

/* ------------------------------------------------------------------ inputs --------------- */

/** Everything `decide` reacts to. Payloads are the contracts' record payloads, unchanged. */
export type LifecycleInput =
  /** `CommandRequested` from the `command-requests` topic. */
  | { readonly type: 'RequestCommand'; readonly now: Date; readonly data: CommandRequested }
  /** `CancelRequested` from the `command-requests` topic. */
  | { readonly type: 'RequestCancel'; readonly now: Date; readonly data: CancelRequested }
  /** `CommandDelivered` from `agent-feedback`: written to a socket / long-poll response. */
  | { readonly type: 'ReportDelivered'; readonly now: Date; readonly data: CommandDelivered }
  /** `CommandAcknowledged` from `agent-feedback`: the agent stored the command. */
  | { readonly type: 'ReportAcknowledged'; readonly now: Date; readonly data: CommandAcknowledged }
  /** `CommandResultReported` from `agent-feedback`. */
  | { readonly type: 'ReportResult'; readonly now: Date; readonly data: CommandResultReported }
  /** Time passed: enforce deliver-by and execute-by deadlines server-side. */
  | { readonly type: 'Tick'; readonly now: Date };

export type LifecycleInputType = LifecycleInput['type'];

export interface LifecycleOptions {
  /** Added to a command's `timeout` before the server declares it timed out. */
  readonly timeoutGraceMs: number;
}

export const DEFAULT_TIMEOUT_GRACE_MS = 30_000;
export const DEFAULT_LIFECYCLE_OPTIONS: LifecycleOptions = { timeoutGraceMs: DEFAULT_TIMEOUT_GRACE_MS };

/** `result.code` of a `CommandTimedOut` decided by the server. */
export const SERVER_TIMEOUT_RESULT_CODE = 3;

/** The `claim` recorded in `CommandClaimIgnored`: the type of the record that was ignored. */
export type ClaimName =
  | 'CommandRequested'
  | 'CancelRequested'
  | 'CommandDelivered'
  | 'CommandAcknowledged'
  | 'CommandResultReported';

/* ------------------------------------------------------------------ decide --------------- */

/**
 * What should happen for `input` given `state`. Pure; never throws for a bad, late or duplicate
 * request or claim — those produce one `CommandClaimIgnored` (audit) and change nothing.
 * Deadlines are evaluated only on `Tick` (and for a request whose deliver-by is already past):
 * a claim that arrives after a deadline but before the Tick that enforces it is still applied,
 * because the agent's word is better information than the server's clock.
 */
export function decide(
  state: AgentCommandState,
  input: LifecycleInput,
  options: Partial<LifecycleOptions> = {},
): CommandEvent[] {
  switch (input.type) {
    case 'RequestCommand':
      return decideRequest(state, input.data, input.now);
    case 'RequestCancel':
      return decideCancel(state, input.data, input.now);
    case 'ReportDelivered':
      return decideDelivered(state, input.data, input.now);
    case 'ReportAcknowledged':
      return decideAcknowledged(state, input.data, input.now);
    case 'ReportResult':
      return decideResult(state, input.data, input.now);
    case 'Tick':
      return decideTick(state, input.now, graceOf(options));
    default:
      return assertNever(input);
  }
}

function decideRequest(state: AgentCommandState, request: CommandRequested, now: Date): CommandEvent[] {
  const at = now.toISOString();
  if (request.agentUuid !== state.agentUuid) {
    const reason = `request: command is for agent ${request.agentUuid}, this stream is agent ${state.agentUuid}`;
    return [ignored('CommandRequested', request.commandId, undefined, at, reason)];
  }
  // Idempotent: a redelivered or retried request never issues twice (whatever its payload).
  if (state.commands.has(request.commandId)) return [];

  const command: Command = {
    id: request.commandId,
    requestId: request.requestId,
    seq: state.lastSeq + 1,
    agentUuid: request.agentUuid,
    action: request.action,
    source: request.source,
    user: request.user,
    issuedAt: at,
    expiresAt: request.expiresAt,
    timeout: request.timeout,
  };
  const events: CommandEvent[] = [{ type: 'CommandIssued', data: { command } }];
  // Already past its deliver-by time: still issued (the seq stream stays dense and auditable).
  if (now.getTime() >= Date.parse(command.expiresAt)) {
    events.push({ type: 'CommandExpired', data: { commandId: command.id, seq: command.seq, at } });
  }
  return events;
}

function decideCancel(state: AgentCommandState, cancel: CancelRequested, now: Date): CommandEvent[] {
  const claim: Claim = { name: 'CancelRequested', verb: 'cancel', commandId: cancel.commandId, at: now.toISOString() };
  const found = lookup(state, claim);
  if ('ignored' in found) return found.ignored;
  const { status, seq } = found;
  switch (status) {
    case 'pending':
    case 'sent':
      return [{ type: 'CommandCancelled', data: { commandId: claim.commandId, seq, at: claim.at, user: cancel.user } }];
    case 'in_progress':
      return ignore(claim, seq, 'command is in_progress (the agent is executing it)');
    case 'cancelled':
      return ignore(claim, seq, 'duplicate: command is already cancelled');
    case 'success':
    case 'failure':
    case 'timed_out':
    case 'expired':
    case 'rejected':
      return ignore(claim, seq, `command is already ${status}`);
    default:
      return assertNever(status);
  }
}

function decideDelivered(state: AgentCommandState, delivered: CommandDelivered, now: Date): CommandEvent[] {
  const claim: Claim = {
    name: 'CommandDelivered',
    verb: 'delivered',
    commandId: delivered.commandId,
    seq: delivered.seq,
    at: now.toISOString(),
  };
  const found = lookup(state, claim);
  if ('ignored' in found) return found.ignored;
  const { status, seq } = found;
  switch (status) {
    case 'pending':
      return [{ type: 'CommandSent', data: { commandId: claim.commandId, seq, at: claim.at, via: delivered.via } }];
    case 'sent':
      // Redelivery after a reconnect: the agent dedupes by seq; nothing to record twice.
      return ignore(claim, seq, 'duplicate: command is already sent');
    case 'in_progress':
    case 'success':
    case 'failure':
    case 'timed_out':
    case 'expired':
    case 'cancelled':
    case 'rejected':
      return ignore(claim, seq, `late: command is already ${status}`);
    default:
      return assertNever(status);
  }
}

function decideAcknowledged(state: AgentCommandState, ack: CommandAcknowledged, now: Date): CommandEvent[] {
  const claim: Claim = {
    name: 'CommandAcknowledged',
    verb: 'acknowledged',
    commandId: ack.commandId,
    ...(ack.seq !== undefined ? { seq: ack.seq } : {}),
    at: now.toISOString(),
  };
  const found = lookup(state, claim);
  if ('ignored' in found) return found.ignored;
  const { status, seq } = found;
  switch (status) {
    case 'pending': // the delivery report may be lost or still on its way: the ack proves delivery
    case 'sent':
      return [{ type: 'CommandInProgress', data: { commandId: claim.commandId, seq, at: claim.at } }];
    case 'in_progress':
      return ignore(claim, seq, 'duplicate: command is already in_progress');
    case 'success':
    case 'failure':
    case 'timed_out':
    case 'expired':
    case 'cancelled':
    case 'rejected':
      return ignore(claim, seq, `late: command is already ${status}`);
    default:
      return assertNever(status);
  }
}

function decideResult(state: AgentCommandState, report: CommandResultReported, now: Date): CommandEvent[] {
  const claim: Claim = {
    name: 'CommandResultReported',
    verb: 'result',
    commandId: report.commandId,
    ...(report.seq !== undefined ? { seq: report.seq } : {}),
    at: now.toISOString(),
  };
  const found = lookup(state, claim);
  if ('ignored' in found) return found.ignored;
  const { status, seq } = found;
  switch (status) {
    case 'pending':
    case 'sent':
    case 'in_progress':
      return [resultEvent(report.status, { commandId: claim.commandId, seq, at: claim.at }, report.result)];
    case 'success':
    case 'failure':
    case 'timed_out':
    case 'expired':
    case 'cancelled':
    case 'rejected':
      return status === report.status
        ? ignore(claim, seq, `duplicate: command is already ${status}`)
        : ignore(claim, seq, `late: claimed ${report.status}, command is already ${status}`);
    default:
      return assertNever(status);
  }
}

function resultEvent(
  status: AgentResultStatus,
  ref: { commandId: string; seq: number; at: string },
  result: CommandResult,
): CommandEvent {
  switch (status) {
    case 'success':
      return { type: 'CommandSucceeded', data: { ...ref, result } };
    case 'failure':
      return { type: 'CommandFailed', data: { ...ref, result } };
    case 'timed_out':
      return { type: 'CommandTimedOut', data: { ...ref, result, by: 'agent' } };
    case 'rejected':
      return { type: 'CommandRejected', data: { ...ref, result } };
    default:
      return assertNever(status);
  }
}

function decideTick(state: AgentCommandState, now: Date, graceMs: number): CommandEvent[] {
  const at = now.toISOString();
  const nowMs = now.getTime();
  const events: CommandEvent[] = [];
  for (const [commandId, entry] of state.commands) {
    if (!isLive(entry)) continue;
    const deadline = deadlineOf(entry, graceMs);
    if (deadline === undefined || nowMs < deadline) continue;
    const seq = entry.command.seq;
    if (entry.status === 'pending') {
      events.push({ type: 'CommandExpired', data: { commandId, seq, at } });
    } else {
      const message =
        `server deadline passed: no result within ${entry.command.timeout}s ` +
        `(+${graceMs / 1000}s grace) of delivery`;
      events.push({
        type: 'CommandTimedOut',
        data: { commandId, seq, at, result: { code: SERVER_TIMEOUT_RESULT_CODE, message }, by: 'server' },
      });
    }
  }
  return events; // map order is seq order
}

/**
 * The earliest moment a `Tick` would produce an event for this agent (it may be in the past:
 * tick now), or undefined when no command is waiting on a deadline. Use the same options as
 * for `decide`.
 */
export function nextDeadline(state: AgentCommandState, options: Partial<LifecycleOptions> = {}): Date | undefined {
  const graceMs = graceOf(options);
  let earliest: number | undefined;
  for (const entry of state.commands.values()) {
    if (!isLive(entry)) continue;
    const deadline = deadlineOf(entry, graceMs);
    if (deadline !== undefined && (earliest === undefined || deadline < earliest)) earliest = deadline;
  }
  return earliest === undefined ? undefined : new Date(earliest);
}

/** Epoch ms at which a Tick ends this command, or undefined when it is terminal. */
function deadlineOf(entry: LiveCommandState, graceMs: number): number | undefined {
  const { status } = entry;
  switch (status) {
    case 'pending':
      return Date.parse(entry.command.expiresAt); // deliver-by
    case 'sent':
    case 'in_progress': {
      // Execute-by counts from the first sign the agent has it: delivery or acknowledgement.
      const starts = [entry.sentAt, entry.inProgressAt]
        .filter((t): t is string => t !== undefined)
        .map((t) => Date.parse(t));
      const start = Math.min(...starts); // never empty: evolve sets sentAt / inProgressAt with the status
      return start + entry.command.timeout * 1000 + graceMs;
    }
    case 'success':
    case 'failure':
    case 'timed_out':
    case 'expired':
    case 'cancelled':
    case 'rejected':
      return undefined;
    default:
      return assertNever(status);
  }
}

function graceOf(options: Partial<LifecycleOptions>): number {
  return options.timeoutGraceMs ?? DEFAULT_TIMEOUT_GRACE_MS;
}

/* -- claims: unknown command and seq mismatch are checked the same way for every claim -- */

interface Claim {
  readonly name: ClaimName;
  /** Prefix of the ignore reason: "cancel: unknown command". */
  readonly verb: string;
  readonly commandId: string;
  /** The seq the claim names, when it names one. */
  readonly seq?: number;
  readonly at: string;
}

function lookup(
  state: AgentCommandState,
  claim: Claim,
): { status: CommandStatus; seq: number } | { ignored: CommandEvent[] } {
  const entry = state.commands.get(claim.commandId);
  if (entry === undefined) {
    const claimed = claim.seq !== undefined ? ` (claimed seq ${claim.seq})` : '';
    return { ignored: ignore(claim, undefined, `unknown command${claimed}`) };
  }
  const seq = seqOf(entry);
  if (claim.seq !== undefined && claim.seq !== seq) {
    return { ignored: ignore(claim, seq, `seq mismatch: claim has seq ${claim.seq}, command has seq ${seq}`) };
  }
  return { status: entry.status, seq };
}

function ignore(claim: Claim, seq: number | undefined, reason: string): CommandEvent[] {
  return [ignored(claim.name, claim.commandId, seq, claim.at, `${claim.verb}: ${reason}`)];
}

function ignored(
  claim: ClaimName,
  commandId: string,
  seq: number | undefined,
  at: string,
  reason: string,
): CommandEvent {
  return {
    type: 'CommandClaimIgnored',
    data: { commandId, ...(seq !== undefined ? { seq } : {}), at, claim, reason },
  };
}

/* ------------------------------------------------------------------ evolve --------------- */

/**
 * Applies one event; returns a new state and leaves `state` untouched. Throws a
 * `CommandLogCorruptError` for an event `decide` could not have produced from this state
 * (seq gap, unknown command, illegal transition): folding a corrupt log must fail loudly.
 */
export function evolve(state: AgentCommandState, event: CommandEvent): AgentCommandState {
  return fold([event], state);
}

/**
 * Folds events into a state. `from` is the state to continue from (not mutated) or the agent
 * uuid to start from scratch; without it the agent is taken from the first `CommandIssued`.
 */
export function fold(events: Iterable<CommandEvent>, from?: AgentCommandState | string): AgentCommandState {
  const list = [...events];
  let agentUuid: string;
  let lastSeq = 0;
  let commands: Map<string, CommandState>;
  if (typeof from === 'object') {
    agentUuid = from.agentUuid;
    lastSeq = from.lastSeq;
    commands = new Map(from.commands); // one copy per fold: the caller's state is never mutated
  } else {
    const first = list[0];
    const inferred = first?.type === 'CommandIssued' ? first.data.command.agentUuid : undefined;
    const uuid = from ?? inferred;
    if (uuid === undefined) throw new FoldWithoutAgentError();
    agentUuid = uuid;
    commands = new Map();
  }
  for (const event of list) lastSeq = apply(agentUuid, lastSeq, commands, event);
  return { agentUuid, lastSeq, commands };
}

/** Applies `event` to `commands` (owned by the caller) and returns the new lastSeq. */
function apply(agentUuid: string, lastSeq: number, commands: Map<string, CommandState>, event: CommandEvent): number {
  switch (event.type) {
    case 'CommandIssued': {
      const command = event.data.command;
      if (command.agentUuid !== agentUuid) {
        throw new CommandAgentMismatchError(agentUuid, command.id, command.agentUuid);
      }
      if (commands.has(command.id)) throw new CommandAlreadyIssuedError(agentUuid, command.id);
      if (command.seq !== lastSeq + 1) {
        throw new CommandSeqOutOfOrderError(agentUuid, command.id, lastSeq + 1, command.seq);
      }
      commands.set(command.id, { command, status: 'pending' });
      return command.seq;
    }
    case 'CommandSent': {
      const { entry, id } = legal(agentUuid, commands, event);
      commands.set(id, { ...entry, status: 'sent', sentAt: event.data.at });
      return lastSeq;
    }
    case 'CommandInProgress': {
      const { entry, id } = legal(agentUuid, commands, event);
      commands.set(id, { ...entry, status: 'in_progress', inProgressAt: event.data.at });
      return lastSeq;
    }
    case 'CommandSucceeded':
    case 'CommandFailed':
    case 'CommandTimedOut':
    case 'CommandRejected': {
      const { entry, id, to } = legal(agentUuid, commands, event);
      commands.set(id, { ...entry, status: to, finishedAt: event.data.at, result: event.data.result });
      return lastSeq;
    }
    case 'CommandExpired':
    case 'CommandCancelled': {
      const { entry, id, to } = legal(agentUuid, commands, event);
      commands.set(id, { ...entry, status: to, finishedAt: event.data.at });
      return lastSeq;
    }
    case 'CommandClaimIgnored': {
      // Recorded for audit; status never changes. Counted on live commands for the view.
      const entry = commands.get(event.data.commandId);
      if (entry !== undefined && isLive(entry)) {
        commands.set(event.data.commandId, { ...entry, ignoredClaims: (entry.ignoredClaims ?? 0) + 1 });
      }
      return lastSeq;
    }
    default:
      return assertNever(event);
  }
}

/** The events that move a command from one status to another. */
export type TransitionEvent = Exclude<CommandEvent, { type: 'CommandIssued' | 'CommandClaimIgnored' }>;

export interface Transition {
  /** The statuses the event may leave from. */
  readonly from: readonly CommandStatus[];
  /** The status it leads to. */
  readonly to: CommandStatus;
}

/** For each transition event: the statuses it may leave from, and the status it leads to. */
const TRANSITIONS: { readonly [K in TransitionEvent['type']]: Transition } = {
  CommandSent: { from: ['pending'], to: 'sent' },
  CommandInProgress: { from: ['pending', 'sent'], to: 'in_progress' },
  CommandSucceeded: { from: ['pending', 'sent', 'in_progress'], to: 'success' },
  CommandFailed: { from: ['pending', 'sent', 'in_progress'], to: 'failure' },
  CommandTimedOut: { from: ['pending', 'sent', 'in_progress'], to: 'timed_out' },
  CommandRejected: { from: ['pending', 'sent', 'in_progress'], to: 'rejected' },
  CommandExpired: { from: ['pending'], to: 'expired' },
  CommandCancelled: { from: ['pending', 'sent'], to: 'cancelled' },
};

function legal(
  agentUuid: string,
  commands: ReadonlyMap<string, CommandState>,
  event: TransitionEvent,
): { entry: LiveCommandState; id: string; to: CommandStatus } {
  const { commandId, seq } = event.data;
  const entry = commands.get(commandId);
  if (entry === undefined) throw new UnknownCommandError(agentUuid, commandId, event.type);
  if (seqOf(entry) !== seq) throw new CommandSeqMismatchError(agentUuid, commandId, event.type, seqOf(entry), seq);
  const rule = TRANSITIONS[event.type];
  // A compacted entry is terminal, so it never passes this check (terminal states never change).
  if (!isLive(entry) || !rule.from.includes(entry.status)) {
    throw new IllegalTransitionError(agentUuid, commandId, entry.status, event.type);
  }
  return { entry, id: commandId, to: rule.to };
}

/** The legal-transition rule of a transition event type (shared by `evolve` and `applyCommandEvent`). */
export function transitionOf(type: TransitionEvent['type']): Transition {
  return TRANSITIONS[type];
}

/** Which event types `evolve` accepts from `status` (for documentation, tests and projections). */
export function legalEventTypes(status: CommandStatus): CommandEventType[] {
  const transitions = (Object.keys(TRANSITIONS) as TransitionEvent['type'][]).filter((type) =>
    TRANSITIONS[type].from.includes(status),
  );
  return [...transitions, 'CommandClaimIgnored'];
}

/* ------------------------------------------------------------------ compaction ----------- */

/**
 * Replaces terminal commands by `{status, seq}` to keep long-lived agents small in memory.
 * Decisions are unchanged (duplicate requests, duplicate/late claims, seq checks), but
 * `projectCommandView` can no longer show a compacted command. `shouldCompact` narrows which
 * terminal commands are compacted (default: all). Returns a new state.
 */
export function compact(
  state: AgentCommandState,
  shouldCompact: (entry: LiveCommandState) => boolean = () => true,
): AgentCommandState {
  const commands = new Map<string, CommandState>();
  for (const [id, entry] of state.commands) {
    if (isLive(entry) && isTerminalStatus(entry.status) && shouldCompact(entry)) {
      commands.set(id, { status: entry.status, seq: entry.command.seq });
    } else {
      commands.set(id, entry);
    }
  }
  return { agentUuid: state.agentUuid, lastSeq: state.lastSeq, commands };
}

/* ------------------------------------------------------------------ helpers -------------- */

/** Exhaustiveness guard for switches; internal to this library (not exported by index.ts). */
export function assertNever(value: never): never {
  throw new Error(`unhandled case: ${JSON.stringify(value)}`);
}
