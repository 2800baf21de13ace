import {
  COMMAND_STATUSES,
  commandEventSchemas,
  type AgentResultStatus,
  type Command,
  type CommandEvent,
  type CommandEventType,
  type CommandRequested,
  type CommandResult,
  type CommandStatus,
  type CommandView,
} from '@herald/contracts';
import {
  compact,
  decide,
  DEFAULT_TIMEOUT_GRACE_MS,
  evolve,
  fold,
  initialState,
  isLive,
  isTerminalStatus,
  legalEventTypes,
  nextDeadline,
  seqOf,
  type AgentCommandState,
  type LifecycleInput,
  type LifecycleOptions,
} from './command-lifecycle';
import { applyCommandEvent, commandIdOf, projectCommandView } from './command-view';
import {
  CommandAgentMismatchError,
  CommandAlreadyIssuedError,
  CommandLogCorruptError,
  CommandSeqMismatchError,
  CommandSeqOutOfOrderError,
  FoldWithoutAgentError,
  IllegalTransitionError,
  UnknownCommandError,
} from './domain.errors';

/* ------------------------------------------------------------------ fixtures ------------- */

const AGENT = '0190a000-0000-7000-8000-0000000000aa';
const OTHER_AGENT = '0190a000-0000-7000-8000-0000000000bb';
const T0 = Date.parse('2025-01-01T00:00:00.000Z');

/** A valid UUIDv7-shaped command id, deterministic for tests. */
function id(n: number): string {
  return `0190a000-0000-7000-8000-${n.toString(16).padStart(12, '0')}`;
}
const C1 = id(1);
const C2 = id(2);
const C3 = id(3);

/** T0 + seconds. */
function t(seconds: number): Date {
  return new Date(T0 + seconds * 1000);
}
function iso(seconds: number): string {
  return t(seconds).toISOString();
}

function request(n: number, overrides: Partial<CommandRequested> = {}): CommandRequested {
  return {
    commandId: id(n),
    requestId: `req-${n}`,
    agentUuid: AGENT,
    action: { name: 'run-scan', version: '1', args: { path: '/tmp' } },
    source: 'management-api',
    user: 'alice',
    requestedAt: iso(0),
    expiresAt: iso(3600),
    timeout: 60,
    ...overrides,
  };
}

function commandOf(n: number, seq: number, issuedAt = iso(0), overrides: Partial<CommandRequested> = {}): Command {
  const r = request(n, overrides);
  return {
    id: r.commandId,
    requestId: r.requestId,
    seq,
    agentUuid: r.agentUuid,
    action: r.action,
    source: r.source,
    user: r.user,
    issuedAt,
    expiresAt: r.expiresAt,
    timeout: r.timeout,
  };
}

const RESULT_OK: CommandResult = { code: 0, message: 'done', data: { files: 3 } };
const RESULT_KO: CommandResult = { code: 1, message: 'disk full' };

/* event builders (what the log holds) */
const ev = {
  issued: (n: number, seq: number, at = 0, overrides: Partial<CommandRequested> = {}): CommandEvent => ({
    type: 'CommandIssued',
    data: { command: commandOf(n, seq, iso(at), overrides) },
  }),
  sent: (n: number, seq: number, at: number, via: 'websocket' | 'long-poll' = 'websocket'): CommandEvent => ({
    type: 'CommandSent',
    data: { commandId: id(n), seq, at: iso(at), via },
  }),
  inProgress: (n: number, seq: number, at: number): CommandEvent => ({
    type: 'CommandInProgress',
    data: { commandId: id(n), seq, at: iso(at) },
  }),
  succeeded: (n: number, seq: number, at: number, result = RESULT_OK): CommandEvent => ({
    type: 'CommandSucceeded',
    data: { commandId: id(n), seq, at: iso(at), result },
  }),
  failed: (n: number, seq: number, at: number, result = RESULT_KO): CommandEvent => ({
    type: 'CommandFailed',
    data: { commandId: id(n), seq, at: iso(at), result },
  }),
  timedOut: (n: number, seq: number, at: number, by: 'agent' | 'server', result = RESULT_KO): CommandEvent => ({
    type: 'CommandTimedOut',
    data: { commandId: id(n), seq, at: iso(at), result, by },
  }),
  rejected: (n: number, seq: number, at: number, result = RESULT_KO): CommandEvent => ({
    type: 'CommandRejected',
    data: { commandId: id(n), seq, at: iso(at), result },
  }),
  expired: (n: number, seq: number, at: number): CommandEvent => ({
    type: 'CommandExpired',
    data: { commandId: id(n), seq, at: iso(at) },
  }),
  cancelled: (n: number, seq: number, at: number, user = 'bob'): CommandEvent => ({
    type: 'CommandCancelled',
    data: { commandId: id(n), seq, at: iso(at), user },
  }),
  ignored: (commandId: string, seq: number | undefined, at: number, claim: string, reason: string): CommandEvent => ({
    type: 'CommandClaimIgnored',
    data: { commandId, ...(seq !== undefined ? { seq } : {}), at: iso(at), claim, reason },
  }),
};

/* input builders (what decide receives) */
const on = {
  request: (now: Date, r: CommandRequested): LifecycleInput => ({ type: 'RequestCommand', now, data: r }),
  cancel: (now: Date, commandId: string, user = 'bob'): LifecycleInput => ({
    type: 'RequestCancel',
    now,
    data: { commandId, user },
  }),
  delivered: (
    now: Date,
    commandId: string,
    seq: number,
    via: 'websocket' | 'long-poll' = 'websocket',
  ): LifecycleInput => ({
    type: 'ReportDelivered',
    now,
    data: { commandId, seq, via },
  }),
  acknowledged: (now: Date, commandId: string, seq?: number): LifecycleInput => ({
    type: 'ReportAcknowledged',
    now,
    data: { commandId, ...(seq !== undefined ? { seq } : {}) },
  }),
  result: (
    now: Date,
    commandId: string,
    status: AgentResultStatus,
    result: CommandResult,
    seq?: number,
  ): LifecycleInput => ({
    type: 'ReportResult',
    now,
    data: { commandId, ...(seq !== undefined ? { seq } : {}), status, result },
  }),
  tick: (now: Date): LifecycleInput => ({ type: 'Tick', now }),
};

/* ------------------------------------------------------------------ given/when/then ------ */

/** Every produced event must match its contracts schema exactly (no missing, extra or undefined keys). */
function expectValid(event: CommandEvent): void {
  const parsed: unknown = commandEventSchemas[event.type].parse(event.data);
  expect(parsed).toStrictEqual(event.data);
}

/** A deep, plain copy of a state (to prove it was not mutated). */
function snapshot(state: AgentCommandState): unknown {
  return JSON.parse(JSON.stringify({ ...state, commands: [...state.commands] })) as unknown;
}

function statusOf(state: AgentCommandState, commandId: string): CommandStatus | undefined {
  return state.commands.get(commandId)?.status;
}

function given(...history: CommandEvent[]) {
  const state = fold(history, AGENT);
  return {
    state,
    when(input: LifecycleInput, options?: Partial<LifecycleOptions>) {
      const before = snapshot(state);
      const produced = decide(state, input, options);
      expect(snapshot(state)).toStrictEqual(before); // decide is pure
      produced.forEach(expectValid);
      const after = fold(produced, state); // evolve accepts whatever decide produces
      expect(snapshot(state)).toStrictEqual(before); // and fold does not mutate its start state
      return {
        produced,
        after,
        then(expected: CommandEvent[]): AgentCommandState {
          expect(produced).toStrictEqual(expected);
          return after;
        },
        thenNothing(): void {
          expect(produced).toStrictEqual([]);
        },
        /** Exactly one CommandClaimIgnored with this reason, and no status changed. */
        thenIgnored(reason: string): CommandEvent {
          expect(produced).toHaveLength(1);
          const [event] = produced;
          if (event?.type !== 'CommandClaimIgnored')
            throw new Error(`expected CommandClaimIgnored, got ${event?.type}`);
          expect(event.data.reason).toBe(reason);
          for (const [commandId, entry] of state.commands) expect(statusOf(after, commandId)).toBe(entry.status);
          return event;
        },
      };
    },
  };
}

/* ------------------------------------------------------------------ RequestCommand ------- */

describe('RequestCommand', () => {
  it('issues the first command with seq 1, issuedAt = now, built from the request', () => {
    given()
      .when(on.request(t(5), request(1)))
      .then([{ type: 'CommandIssued', data: { command: commandOf(1, 1, iso(5)) } }]);
  });

  it('issues the next command with lastSeq + 1', () => {
    given(ev.issued(1, 1), ev.sent(1, 1, 1))
      .when(on.request(t(5), request(2)))
      .then([{ type: 'CommandIssued', data: { command: commandOf(2, 2, iso(5)) } }]);
  });

  it('is idempotent: a duplicate request (same command id) issues nothing, whatever its payload and status', () => {
    given(ev.issued(1, 1))
      .when(on.request(t(5), request(1)))
      .thenNothing();
    given(ev.issued(1, 1), ev.succeeded(1, 1, 2))
      .when(on.request(t(5), request(1, { user: 'mallory', timeout: 5 })))
      .thenNothing();
  });

  it('issues then expires a request whose deliver-by is already past (the seq is still taken)', () => {
    const after = given(ev.issued(1, 1))
      .when(on.request(t(100), request(2, { expiresAt: iso(50) })))
      .then([
        { type: 'CommandIssued', data: { command: commandOf(2, 2, iso(100), { expiresAt: iso(50) }) } },
        ev.expired(2, 2, 100),
      ]);
    expect(statusOf(after, C2)).toBe('expired');
    expect(after.lastSeq).toBe(2);
    given(ev.issued(1, 1), ev.issued(2, 2, 100, { expiresAt: iso(50) }), ev.expired(2, 2, 100))
      .when(on.request(t(101), request(3)))
      .then([{ type: 'CommandIssued', data: { command: commandOf(3, 3, iso(101)) } }]);
  });

  it('expires a request whose deliver-by is exactly now', () => {
    given()
      .when(on.request(t(50), request(1, { expiresAt: iso(50) })))
      .then([
        { type: 'CommandIssued', data: { command: commandOf(1, 1, iso(50), { expiresAt: iso(50) }) } },
        ev.expired(1, 1, 50),
      ]);
  });

  it('records a request for another agent as ignored and issues nothing', () => {
    const event = given()
      .when(on.request(t(5), request(1, { agentUuid: OTHER_AGENT })))
      .thenIgnored(`request: command is for agent ${OTHER_AGENT}, this stream is agent ${AGENT}`);
    expect(event).toStrictEqual(
      ev.ignored(
        C1,
        undefined,
        5,
        'CommandRequested',
        `request: command is for agent ${OTHER_AGENT}, this stream is agent ${AGENT}`,
      ),
    );
  });

  it('keeps seq dense across many requests, duplicates and immediate expiries', () => {
    let state = initialState(AGENT);
    const issuedSeqs: number[] = [];
    for (let i = 1; i <= 200; i++) {
      const n = i % 7 === 0 ? i - 1 : i; // every 7th request repeats the previous id
      const expiresAt = i % 5 === 0 ? iso(i - 1) : iso(i + 3600); // every 5th is already past
      const events = decide(state, on.request(t(i), request(n, { expiresAt })));
      events.forEach(expectValid);
      for (const e of events) if (e.type === 'CommandIssued') issuedSeqs.push(e.data.command.seq);
      state = fold(events, state);
    }
    expect(issuedSeqs).toEqual(Array.from({ length: issuedSeqs.length }, (_, k) => k + 1));
    expect(state.lastSeq).toBe(issuedSeqs.length);
    expect(state.commands.size).toBe(issuedSeqs.length);
    expect([...state.commands.values()].map(seqOf)).toEqual(issuedSeqs); // map iterates in seq order
  });
});

/* ------------------------------------------------------------------ legal transitions ---- */

describe('legal transitions (exact events)', () => {
  it('pending → sent on delivery, with the channel', () => {
    given(ev.issued(1, 1))
      .when(on.delivered(t(10), C1, 1, 'long-poll'))
      .then([ev.sent(1, 1, 10, 'long-poll')]);
  });

  it('sent → in_progress on acknowledgement (seq optional)', () => {
    given(ev.issued(1, 1), ev.sent(1, 1, 5))
      .when(on.acknowledged(t(10), C1))
      .then([ev.inProgress(1, 1, 10)]);
    given(ev.issued(1, 1), ev.sent(1, 1, 5))
      .when(on.acknowledged(t(10), C1, 1))
      .then([ev.inProgress(1, 1, 10)]);
  });

  it('pending → in_progress shortcut: the delivery report may be lost or late', () => {
    const after = given(ev.issued(1, 1))
      .when(on.acknowledged(t(10), C1, 1))
      .then([ev.inProgress(1, 1, 10)]);
    expect(projectCommandView(after, C1)?.timestamps).toStrictEqual({ issued: iso(0), inProgress: iso(10) });
    // the delivery report that arrives afterwards is recorded, not applied
    given(ev.issued(1, 1), ev.inProgress(1, 1, 10))
      .when(on.delivered(t(11), C1, 1))
      .then([ev.ignored(C1, 1, 11, 'CommandDelivered', 'delivered: late: command is already in_progress')]);
  });

  const outcomes: [AgentResultStatus, (at: number, r: CommandResult) => CommandEvent][] = [
    ['success', (at, r) => ev.succeeded(1, 1, at, r)],
    ['failure', (at, r) => ev.failed(1, 1, at, r)],
    ['timed_out', (at, r) => ev.timedOut(1, 1, at, 'agent', r)],
    ['rejected', (at, r) => ev.rejected(1, 1, at, r)],
  ];
  const fromStates: [string, CommandEvent[]][] = [
    ['pending', [ev.issued(1, 1)]],
    ['sent', [ev.issued(1, 1), ev.sent(1, 1, 1)]],
    ['in_progress', [ev.issued(1, 1), ev.sent(1, 1, 1), ev.inProgress(1, 1, 2)]],
  ];
  describe.each(fromStates)('from %s', (_from, history) => {
    it.each(outcomes)('result %s → its terminal event (timed_out by agent)', (status, expected) => {
      const result = status === 'success' ? RESULT_OK : RESULT_KO;
      const after = given(...history)
        .when(on.result(t(20), C1, status, result, 1))
        .then([expected(20, result)]);
      expect(statusOf(after, C1)).toBe(status);
      expect(projectCommandView(after, C1)?.result).toStrictEqual(result);
    });
  });

  it('pending → cancelled and sent → cancelled, naming the user', () => {
    given(ev.issued(1, 1))
      .when(on.cancel(t(10), C1, 'carol'))
      .then([ev.cancelled(1, 1, 10, 'carol')]);
    given(ev.issued(1, 1), ev.sent(1, 1, 5))
      .when(on.cancel(t(10), C1, 'carol'))
      .then([ev.cancelled(1, 1, 10, 'carol')]);
  });

  it('events carry the seq of their command, not the latest seq', () => {
    given(ev.issued(1, 1), ev.issued(2, 2), ev.issued(3, 3))
      .when(on.delivered(t(10), C2, 2))
      .then([ev.sent(2, 2, 10)]);
  });
});

/* ------------------------------------------------------------------ the full table ------- */

const INPUT_KINDS = [
  'request',
  'cancel',
  'delivered',
  'acknowledged',
  'result:success',
  'result:failure',
  'result:timed_out',
  'result:rejected',
  'tick:early',
  'tick:late',
] as const;
type InputKind = (typeof INPUT_KINDS)[number];
type Outcome = CommandEventType | 'nothing' | { ignored: string };

const NOW = t(30); // after every event of the fixtures, before every deadline
const LATE = t(2 * 3600); // after every deadline of the fixtures

function inputFor(kind: InputKind): LifecycleInput {
  switch (kind) {
    case 'request':
      return on.request(NOW, request(1));
    case 'cancel':
      return on.cancel(NOW, C1);
    case 'delivered':
      return on.delivered(NOW, C1, 1);
    case 'acknowledged':
      return on.acknowledged(NOW, C1, 1);
    case 'result:success':
      return on.result(NOW, C1, 'success', RESULT_OK, 1);
    case 'result:failure':
      return on.result(NOW, C1, 'failure', RESULT_KO, 1);
    case 'result:timed_out':
      return on.result(NOW, C1, 'timed_out', RESULT_KO, 1);
    case 'result:rejected':
      return on.result(NOW, C1, 'rejected', RESULT_KO, 1);
    case 'tick:early':
      return on.tick(NOW);
    case 'tick:late':
      return on.tick(LATE);
    default: {
      const unreachable: never = kind;
      throw new Error(`unknown input kind ${String(unreachable)}`);
    }
  }
}

/** The `claim` recorded when the input is ignored: the type of the record it came from. */
function claimOf(kind: InputKind): string {
  switch (kind) {
    case 'request':
      return 'CommandRequested';
    case 'cancel':
      return 'CancelRequested';
    case 'delivered':
      return 'CommandDelivered';
    case 'acknowledged':
      return 'CommandAcknowledged';
    case 'result:success':
    case 'result:failure':
    case 'result:timed_out':
    case 'result:rejected':
      return 'CommandResultReported';
    case 'tick:early':
    case 'tick:late':
      return 'none: a Tick is never ignored';
    default: {
      const unreachable: never = kind;
      throw new Error(`unknown input kind ${String(unreachable)}`);
    }
  }
}

/** How command C1 (seq 1) reaches each status. */
const HISTORY: Record<CommandStatus, CommandEvent[]> = {
  pending: [ev.issued(1, 1)],
  sent: [ev.issued(1, 1), ev.sent(1, 1, 1)],
  in_progress: [ev.issued(1, 1), ev.sent(1, 1, 1), ev.inProgress(1, 1, 2)],
  success: [ev.issued(1, 1), ev.sent(1, 1, 1), ev.inProgress(1, 1, 2), ev.succeeded(1, 1, 3)],
  failure: [ev.issued(1, 1), ev.sent(1, 1, 1), ev.inProgress(1, 1, 2), ev.failed(1, 1, 3)],
  timed_out: [ev.issued(1, 1), ev.sent(1, 1, 1), ev.inProgress(1, 1, 2), ev.timedOut(1, 1, 3, 'agent')],
  expired: [ev.issued(1, 1, 0, { expiresAt: iso(20) }), ev.expired(1, 1, 20)],
  cancelled: [ev.issued(1, 1), ev.cancelled(1, 1, 1)],
  rejected: [ev.issued(1, 1), ev.sent(1, 1, 1), ev.rejected(1, 1, 2)],
};

/** The status a transition event leads to. */
const STATUS_AFTER: Partial<Record<CommandEventType, CommandStatus>> = {
  CommandSent: 'sent',
  CommandInProgress: 'in_progress',
  CommandSucceeded: 'success',
  CommandFailed: 'failure',
  CommandTimedOut: 'timed_out',
  CommandRejected: 'rejected',
  CommandExpired: 'expired',
  CommandCancelled: 'cancelled',
};

// prettier-ignore
const TABLE: Record<CommandStatus, Record<InputKind, Outcome>> = {
  pending: {
    request: 'nothing',
    cancel: 'CommandCancelled',
    delivered: 'CommandSent',
    acknowledged: 'CommandInProgress',
    'result:success': 'CommandSucceeded',
    'result:failure': 'CommandFailed',
    'result:timed_out': 'CommandTimedOut',
    'result:rejected': 'CommandRejected',
    'tick:early': 'nothing',
    'tick:late': 'CommandExpired',
  },
  sent: {
    request: 'nothing',
    cancel: 'CommandCancelled',
    delivered: { ignored: 'delivered: duplicate: command is already sent' },
    acknowledged: 'CommandInProgress',
    'result:success': 'CommandSucceeded',
    'result:failure': 'CommandFailed',
    'result:timed_out': 'CommandTimedOut',
    'result:rejected': 'CommandRejected',
    'tick:early': 'nothing',
    'tick:late': 'CommandTimedOut',
  },
  in_progress: {
    request: 'nothing',
    cancel: { ignored: 'cancel: command is in_progress (the agent is executing it)' },
    delivered: { ignored: 'delivered: late: command is already in_progress' },
    acknowledged: { ignored: 'acknowledged: duplicate: command is already in_progress' },
    'result:success': 'CommandSucceeded',
    'result:failure': 'CommandFailed',
    'result:timed_out': 'CommandTimedOut',
    'result:rejected': 'CommandRejected',
    'tick:early': 'nothing',
    'tick:late': 'CommandTimedOut',
  },
  success: {
    request: 'nothing',
    cancel: { ignored: 'cancel: command is already success' },
    delivered: { ignored: 'delivered: late: command is already success' },
    acknowledged: { ignored: 'acknowledged: late: command is already success' },
    'result:success': { ignored: 'result: duplicate: command is already success' },
    'result:failure': { ignored: 'result: late: claimed failure, command is already success' },
    'result:timed_out': { ignored: 'result: late: claimed timed_out, command is already success' },
    'result:rejected': { ignored: 'result: late: claimed rejected, command is already success' },
    'tick:early': 'nothing',
    'tick:late': 'nothing',
  },
  failure: {
    request: 'nothing',
    cancel: { ignored: 'cancel: command is already failure' },
    delivered: { ignored: 'delivered: late: command is already failure' },
    acknowledged: { ignored: 'acknowledged: late: command is already failure' },
    'result:success': { ignored: 'result: late: claimed success, command is already failure' },
    'result:failure': { ignored: 'result: duplicate: command is already failure' },
    'result:timed_out': { ignored: 'result: late: claimed timed_out, command is already failure' },
    'result:rejected': { ignored: 'result: late: claimed rejected, command is already failure' },
    'tick:early': 'nothing',
    'tick:late': 'nothing',
  },
  timed_out: {
    request: 'nothing',
    cancel: { ignored: 'cancel: command is already timed_out' },
    delivered: { ignored: 'delivered: late: command is already timed_out' },
    acknowledged: { ignored: 'acknowledged: late: command is already timed_out' },
    'result:success': { ignored: 'result: late: claimed success, command is already timed_out' },
    'result:failure': { ignored: 'result: late: claimed failure, command is already timed_out' },
    'result:timed_out': { ignored: 'result: duplicate: command is already timed_out' },
    'result:rejected': { ignored: 'result: late: claimed rejected, command is already timed_out' },
    'tick:early': 'nothing',
    'tick:late': 'nothing',
  },
  expired: {
    request: 'nothing',
    cancel: { ignored: 'cancel: command is already expired' },
    delivered: { ignored: 'delivered: late: command is already expired' },
    acknowledged: { ignored: 'acknowledged: late: command is already expired' },
    'result:success': { ignored: 'result: late: claimed success, command is already expired' },
    'result:failure': { ignored: 'result: late: claimed failure, command is already expired' },
    'result:timed_out': { ignored: 'result: late: claimed timed_out, command is already expired' },
    'result:rejected': { ignored: 'result: late: claimed rejected, command is already expired' },
    'tick:early': 'nothing',
    'tick:late': 'nothing',
  },
  cancelled: {
    request: 'nothing',
    cancel: { ignored: 'cancel: duplicate: command is already cancelled' },
    delivered: { ignored: 'delivered: late: command is already cancelled' },
    acknowledged: { ignored: 'acknowledged: late: command is already cancelled' },
    'result:success': { ignored: 'result: late: claimed success, command is already cancelled' },
    'result:failure': { ignored: 'result: late: claimed failure, command is already cancelled' },
    'result:timed_out': { ignored: 'result: late: claimed timed_out, command is already cancelled' },
    'result:rejected': { ignored: 'result: late: claimed rejected, command is already cancelled' },
    'tick:early': 'nothing',
    'tick:late': 'nothing',
  },
  rejected: {
    request: 'nothing',
    cancel: { ignored: 'cancel: command is already rejected' },
    delivered: { ignored: 'delivered: late: command is already rejected' },
    acknowledged: { ignored: 'acknowledged: late: command is already rejected' },
    'result:success': { ignored: 'result: late: claimed success, command is already rejected' },
    'result:failure': { ignored: 'result: late: claimed failure, command is already rejected' },
    'result:timed_out': { ignored: 'result: late: claimed timed_out, command is already rejected' },
    'result:rejected': { ignored: 'result: duplicate: command is already rejected' },
    'tick:early': 'nothing',
    'tick:late': 'nothing',
  },
};

const CELLS = COMMAND_STATUSES.flatMap((status) =>
  INPUT_KINDS.map((kind) => [status, kind, TABLE[status][kind]] as const),
);

describe('every status × every input (9 × 10)', () => {
  it.each(CELLS)('%s + %s → %j', (status, kind, outcome) => {
    const fixture = given(...HISTORY[status]);
    expect(statusOf(fixture.state, C1)).toBe(status); // the fixture reaches the status it claims
    const when = fixture.when(inputFor(kind));
    if (outcome === 'nothing') {
      when.thenNothing();
    } else if (typeof outcome === 'object') {
      const event = when.thenIgnored(outcome.ignored);
      expect(event.data).toMatchObject({ commandId: C1, seq: 1, at: NOW.toISOString(), claim: claimOf(kind) });
    } else {
      expect(when.produced.map((e) => e.type)).toEqual([outcome]);
      expect(when.produced[0]?.data).toMatchObject({ commandId: C1, seq: 1 });
      expect(statusOf(when.after, C1)).toBe(STATUS_AFTER[outcome]);
      expect(isTerminalStatus(status)).toBe(false); // only active commands ever move
    }
  });

  it('terminal statuses never change, whatever the input', () => {
    for (const status of COMMAND_STATUSES.filter(isTerminalStatus)) {
      for (const kind of INPUT_KINDS) {
        const { after } = given(...HISTORY[status]).when(inputFor(kind));
        expect(statusOf(after, C1)).toBe(status);
      }
    }
  });
});

/* ------------------------------------------------------------------ claims that don't fit  */

describe('claims that do not match', () => {
  const history = [ev.issued(1, 1), ev.issued(2, 2)];

  it('ignores a claim whose seq differs from the command seq, naming both', () => {
    given(...history)
      .when(on.delivered(t(10), C2, 1))
      .then([ev.ignored(C2, 2, 10, 'CommandDelivered', 'delivered: seq mismatch: claim has seq 1, command has seq 2')]);
    given(...history)
      .when(on.acknowledged(t(10), C1, 7))
      .then([
        ev.ignored(C1, 1, 10, 'CommandAcknowledged', 'acknowledged: seq mismatch: claim has seq 7, command has seq 1'),
      ]);
    given(...history)
      .when(on.result(t(10), C2, 'success', RESULT_OK, 3))
      .then([
        ev.ignored(C2, 2, 10, 'CommandResultReported', 'result: seq mismatch: claim has seq 3, command has seq 2'),
      ]);
  });

  it('checks the seq before the status (a wrong seq on a terminal command is a mismatch, not a duplicate)', () => {
    given(...history, ev.succeeded(1, 1, 5))
      .when(on.result(t(10), C1, 'success', RESULT_OK, 2))
      .thenIgnored('result: seq mismatch: claim has seq 2, command has seq 1');
  });

  it('ignores every kind of claim about an unknown command (no seq recorded)', () => {
    const unknown = id(99);
    given(...history)
      .when(on.cancel(t(10), unknown))
      .then([ev.ignored(unknown, undefined, 10, 'CancelRequested', 'cancel: unknown command')]);
    given(...history)
      .when(on.delivered(t(10), unknown, 3))
      .then([ev.ignored(unknown, undefined, 10, 'CommandDelivered', 'delivered: unknown command (claimed seq 3)')]);
    given(...history)
      .when(on.acknowledged(t(10), unknown))
      .then([ev.ignored(unknown, undefined, 10, 'CommandAcknowledged', 'acknowledged: unknown command')]);
    given(...history)
      .when(on.result(t(10), unknown, 'failure', RESULT_KO))
      .then([ev.ignored(unknown, undefined, 10, 'CommandResultReported', 'result: unknown command')]);
  });

  it('records ignored claims on the command (status unchanged) and shows the count in the view', () => {
    let state = fold([ev.issued(1, 1), ev.sent(1, 1, 1), ev.inProgress(1, 1, 2), ev.succeeded(1, 1, 3)], AGENT);
    for (const input of [
      on.result(t(4), C1, 'success', RESULT_OK, 1),
      on.acknowledged(t(5), C1),
      on.cancel(t(6), C1),
    ]) {
      state = fold(decide(state, input), state);
    }
    expect(statusOf(state, C1)).toBe('success');
    expect(projectCommandView(state, C1)).toMatchObject({ status: 'success', ignoredClaims: 3, result: RESULT_OK });
  });
});

/* ------------------------------------------------------------------ deadlines ------------ */

describe('deadlines (Tick) and nextDeadline', () => {
  const grace = DEFAULT_TIMEOUT_GRACE_MS / 1000;

  it('expires a pending command at its deliver-by time, not before', () => {
    const history = [ev.issued(1, 1, 0, { expiresAt: iso(300) })];
    given(...history)
      .when(on.tick(new Date(T0 + 300_000 - 1)))
      .thenNothing();
    given(...history)
      .when(on.tick(t(300)))
      .then([ev.expired(1, 1, 300)]);
    expect(nextDeadline(fold(history, AGENT))).toEqual(t(300));
  });

  it('does not expire a sent command (deliver-by no longer applies) but times it out after timeout + grace', () => {
    const history = [ev.issued(1, 1, 0, { expiresAt: iso(10), timeout: 60 }), ev.sent(1, 1, 5)];
    given(...history)
      .when(on.tick(t(20)))
      .thenNothing();
    given(...history)
      .when(on.tick(new Date(T0 + (5 + 60 + grace) * 1000 - 1)))
      .thenNothing();
    const [event] = given(...history).when(on.tick(t(5 + 60 + grace))).produced;
    expect(event).toStrictEqual({
      type: 'CommandTimedOut',
      data: {
        commandId: C1,
        seq: 1,
        at: iso(5 + 60 + grace),
        result: { code: 3, message: 'server deadline passed: no result within 60s (+30s grace) of delivery' },
        by: 'server',
      },
    });
    expect(nextDeadline(fold(history, AGENT))).toEqual(t(5 + 60 + grace));
  });

  it('counts the execution deadline from the first of sent / in_progress', () => {
    const sentFirst = fold([ev.issued(1, 1, 0, { timeout: 60 }), ev.sent(1, 1, 5), ev.inProgress(1, 1, 50)], AGENT);
    expect(nextDeadline(sentFirst)).toEqual(t(5 + 60 + grace));
    const shortcut = fold([ev.issued(1, 1, 0, { timeout: 60 }), ev.inProgress(1, 1, 50)], AGENT);
    expect(nextDeadline(shortcut)).toEqual(t(50 + 60 + grace));
    given(ev.issued(1, 1, 0, { timeout: 60 }), ev.inProgress(1, 1, 50))
      .when(on.tick(t(50 + 60 + grace)))
      .produced.forEach((e) => expect(e.type).toBe('CommandTimedOut'));
  });

  it('takes the grace as a parameter (decide and nextDeadline alike)', () => {
    const history = [ev.issued(1, 1, 0, { timeout: 60 }), ev.sent(1, 1, 0)];
    const options = { timeoutGraceMs: 0 };
    expect(nextDeadline(fold(history, AGENT), options)).toEqual(t(60));
    const [event] = given(...history).when(on.tick(t(60)), options).produced;
    if (event?.type !== 'CommandTimedOut') throw new Error(`expected CommandTimedOut, got ${event?.type}`);
    expect(event.data.by).toBe('server');
    expect(event.data.result.code).toBe(3);
    expect(event.data.result.message).toContain('+0s grace');
    given(...history)
      .when(on.tick(t(60)))
      .thenNothing(); // default grace: not yet
  });

  it('returns the deadline events of many commands in seq order, and only the due ones', () => {
    const history = [
      ev.issued(1, 1, 0, { expiresAt: iso(100) }), // pending, due
      ev.issued(2, 2, 0, { expiresAt: iso(10_000) }), // pending, not due
      ev.issued(3, 3, 0, { timeout: 10 }),
      ev.sent(3, 3, 1), // sent, due at 41
      ev.issued(4, 4, 0, { timeout: 10 }),
      ev.inProgress(4, 4, 2), // in_progress, due at 42
      ev.issued(5, 5, 0, { expiresAt: iso(5) }),
      ev.cancelled(5, 5, 1), // terminal: never
    ];
    const after = given(...history)
      .when(on.tick(t(200)))
      .then([
        ev.expired(1, 1, 200),
        ev.timedOut(3, 3, 200, 'server', {
          code: 3,
          message: 'server deadline passed: no result within 10s (+30s grace) of delivery',
        }),
        ev.timedOut(4, 4, 200, 'server', {
          code: 3,
          message: 'server deadline passed: no result within 10s (+30s grace) of delivery',
        }),
      ]);
    expect(nextDeadline(fold(history, AGENT))).toEqual(t(41));
    expect(nextDeadline(after)).toEqual(t(10_000));
    given(...history, ...decide(fold(history, AGENT), on.tick(t(200))))
      .when(on.tick(t(200)))
      .thenNothing(); // a second Tick at the same time is a no-op
  });

  it('has no next deadline without active commands', () => {
    expect(nextDeadline(initialState(AGENT))).toBeUndefined();
    expect(nextDeadline(fold(HISTORY.success, AGENT))).toBeUndefined();
    expect(nextDeadline(fold(HISTORY.expired, AGENT))).toBeUndefined();
  });

  it('nextDeadline is exactly the first moment a Tick produces an event', () => {
    const state = fold(
      [ev.issued(1, 1, 0, { expiresAt: iso(70) }), ev.issued(2, 2, 0, { timeout: 5 }), ev.sent(2, 2, 30)],
      AGENT,
    );
    const deadline = nextDeadline(state);
    expect(deadline).toEqual(t(65));
    if (deadline === undefined) return;
    expect(decide(state, on.tick(new Date(deadline.getTime() - 1)))).toEqual([]);
    expect(decide(state, on.tick(deadline)).map(commandIdOf)).toEqual([C2]);
  });
});

/* ------------------------------------------------------------------ evolve --------------- */

describe('evolve / fold', () => {
  it('builds the state of a command from its events', () => {
    const state = fold([ev.issued(1, 1), ev.sent(1, 1, 1), ev.inProgress(1, 1, 2), ev.succeeded(1, 1, 3)], AGENT);
    expect(state.lastSeq).toBe(1);
    expect(state.commands.get(C1)).toStrictEqual({
      command: commandOf(1, 1),
      status: 'success',
      sentAt: iso(1),
      inProgressAt: iso(2),
      finishedAt: iso(3),
      result: RESULT_OK,
    });
  });

  it('does not mutate its input state', () => {
    const state = fold([ev.issued(1, 1)], AGENT);
    const before = snapshot(state);
    const next = evolve(state, ev.sent(1, 1, 1));
    expect(snapshot(state)).toStrictEqual(before);
    expect(next).not.toBe(state);
    expect(statusOf(next, C1)).toBe('sent');
    expect(statusOf(state, C1)).toBe('pending');
  });

  it('rejects a CommandIssued whose seq is not lastSeq + 1 (gap, repeat, start above 1)', () => {
    const state = fold([ev.issued(1, 1)], AGENT);
    expect(() => evolve(state, ev.issued(2, 3))).toThrow(CommandSeqOutOfOrderError);
    expect(() => evolve(state, ev.issued(2, 1))).toThrow(CommandSeqOutOfOrderError);
    expect(() => fold([ev.issued(1, 2)], AGENT)).toThrow(CommandSeqOutOfOrderError);
    try {
      evolve(state, ev.issued(2, 3));
    } catch (e) {
      expect(e).toBeInstanceOf(CommandLogCorruptError);
      expect(e).toMatchObject({ code: 'command_seq_out_of_order', expectedSeq: 2, actualSeq: 3, agentUuid: AGENT });
    }
  });

  it('rejects a command issued twice or for another agent', () => {
    const state = fold([ev.issued(1, 1)], AGENT);
    expect(() => evolve(state, ev.issued(1, 2))).toThrow(CommandAlreadyIssuedError);
    expect(() => evolve(state, ev.issued(2, 2, 0, { agentUuid: OTHER_AGENT }))).toThrow(CommandAgentMismatchError);
  });

  it('rejects events for an unknown command or with the wrong seq', () => {
    const state = fold([ev.issued(1, 1)], AGENT);
    expect(() => evolve(state, ev.sent(2, 2, 1))).toThrow(UnknownCommandError);
    expect(() => evolve(state, ev.sent(1, 2, 1))).toThrow(CommandSeqMismatchError);
  });

  it.each(COMMAND_STATUSES)('from %s accepts exactly the legal events; terminal states never change', (status) => {
    const state = fold(HISTORY[status], AGENT);
    const all: CommandEvent[] = [
      ev.sent(1, 1, 9),
      ev.inProgress(1, 1, 9),
      ev.succeeded(1, 1, 9),
      ev.failed(1, 1, 9),
      ev.timedOut(1, 1, 9, 'agent'),
      ev.rejected(1, 1, 9),
      ev.expired(1, 1, 9),
      ev.cancelled(1, 1, 9),
      ev.ignored(C1, 1, 9, 'CommandAcknowledged', 'acknowledged: duplicate'),
    ];
    const legal = legalEventTypes(status);
    for (const event of all) {
      if (legal.includes(event.type)) {
        const next = evolve(state, event);
        const expected = STATUS_AFTER[event.type] ?? status;
        expect(statusOf(next, C1)).toBe(expected);
      } else {
        expect(() => evolve(state, event)).toThrow(IllegalTransitionError);
      }
    }
    if (isTerminalStatus(status)) expect(legal).toEqual(['CommandClaimIgnored']);
  });

  it('ignores a CommandClaimIgnored about an unknown command', () => {
    const state = fold([ev.issued(1, 1)], AGENT);
    const next = evolve(state, ev.ignored(id(99), undefined, 5, 'CancelRequested', 'cancel: unknown command'));
    expect(next).toEqual(state);
  });

  it('infers the agent from the first CommandIssued, or needs one', () => {
    expect(fold([ev.issued(1, 1)]).agentUuid).toBe(AGENT);
    expect(fold([], AGENT)).toEqual(initialState(AGENT));
    expect(() => fold([])).toThrow(FoldWithoutAgentError);
    expect(() => fold([ev.issued(1, 1)], OTHER_AGENT)).toThrow(CommandAgentMismatchError);
  });

  it('continues from a state without mutating it', () => {
    const start = fold([ev.issued(1, 1)], AGENT);
    const before = snapshot(start);
    const next = fold([ev.sent(1, 1, 1), ev.issued(2, 2), ev.cancelled(2, 2, 3)], start);
    expect(snapshot(start)).toStrictEqual(before);
    expect(next).toEqual(fold([ev.issued(1, 1), ev.sent(1, 1, 1), ev.issued(2, 2), ev.cancelled(2, 2, 3)], AGENT));
  });
});

/* ------------------------------------------------------------------ view and compaction -- */

describe('projectCommandView', () => {
  it('shows a pending command waiting for its agent', () => {
    expect(projectCommandView(fold([ev.issued(1, 1)], AGENT), C1)).toStrictEqual({
      id: C1,
      requestId: 'req-1',
      agent: AGENT,
      seq: 1,
      action: { name: 'run-scan', version: '1', args: { path: '/tmp' } },
      status: 'pending',
      source: 'management-api',
      user: 'alice',
      expiresAt: iso(3600),
      timeout: 60,
      timestamps: { issued: iso(0) },
      waitingReason: 'waiting for agent to connect',
    });
  });

  it('shows every timestamp and the result of a finished command, and no waiting reason', () => {
    const view = projectCommandView(fold(HISTORY.success, AGENT), C1);
    expect(view?.timestamps).toStrictEqual({ issued: iso(0), sent: iso(1), inProgress: iso(2), finished: iso(3) });
    expect(view?.result).toStrictEqual(RESULT_OK);
    expect(view).not.toHaveProperty('waitingReason');
  });

  it('explains what a sent or in_progress command is waiting for', () => {
    expect(projectCommandView(fold(HISTORY.sent, AGENT), C1)?.waitingReason).toBe('waiting for agent to acknowledge');
    expect(projectCommandView(fold(HISTORY.in_progress, AGENT), C1)?.waitingReason).toBe(
      'waiting for agent to report the result',
    );
  });

  it('returns undefined for an unknown command', () => {
    expect(projectCommandView(fold(HISTORY.pending, AGENT), id(99))).toBeUndefined();
  });
});

describe('applyCommandEvent (the projection reducer) and commandIdOf', () => {
  function project(events: CommandEvent[], start = new Map<string, CommandView>()): Map<string, CommandView> {
    const views = new Map(start);
    for (const event of events) {
      const next = applyCommandEvent(views.get(commandIdOf(event)), event);
      if (next !== undefined) views.set(commandIdOf(event), next);
    }
    return views;
  }

  it('names the command of every event', () => {
    expect(commandIdOf(ev.issued(1, 1))).toBe(C1);
    expect(commandIdOf(ev.cancelled(2, 1, 1))).toBe(C2);
    expect(commandIdOf(ev.ignored(C3, undefined, 1, 'CancelRequested', 'x'))).toBe(C3);
  });

  it.each(COMMAND_STATUSES)('gives the same view as projectCommandView(fold(log)) for a %s command', (status) => {
    const history = [...HISTORY[status], ev.ignored(C1, 1, 9000, 'CommandAcknowledged', 'acknowledged: late')];
    expect(project(history).get(C1)).toStrictEqual(projectCommandView(fold(history, AGENT), C1));
  });

  it('is lenient with a replayed log: applying events again changes no status, timestamp or result', () => {
    for (const status of COMMAND_STATUSES) {
      const once = project(HISTORY[status]);
      const twice = project(HISTORY[status], once);
      expect(twice).toStrictEqual(once);
    }
  });

  it('never changes a terminal view and ignores a seq that is not the command seq', () => {
    const done = project(HISTORY.success).get(C1);
    expect(applyCommandEvent(done, ev.failed(1, 1, 10))).toBe(done);
    expect(applyCommandEvent(done, ev.cancelled(1, 1, 10))).toBe(done);
    const pending = project(HISTORY.pending).get(C1);
    expect(applyCommandEvent(pending, ev.sent(1, 2, 10))).toBe(pending);
  });

  it('returns undefined for an event about a command it has no view of', () => {
    expect(applyCommandEvent(undefined, ev.sent(1, 1, 1))).toBeUndefined();
    expect(
      applyCommandEvent(undefined, ev.ignored(C1, undefined, 1, 'CancelRequested', 'cancel: unknown command')),
    ).toBeUndefined();
  });

  it('does not mutate the view it is given', () => {
    const view = project(HISTORY.pending).get(C1);
    const before = JSON.stringify(view);
    applyCommandEvent(view, ev.sent(1, 1, 5));
    expect(JSON.stringify(view)).toBe(before);
  });
});

describe('compact', () => {
  const history = [...HISTORY.success, ev.issued(2, 2), ev.sent(2, 2, 5)];

  it('reduces terminal commands to {status, seq} and leaves active ones alone', () => {
    const state = fold(history, AGENT);
    const compacted = compact(state);
    expect(compacted.commands.get(C1)).toStrictEqual({ status: 'success', seq: 1 });
    expect(compacted.commands.get(C2)).toBe(state.commands.get(C2));
    expect(isLive(state.commands.get(C1) ?? { status: 'success', seq: 0 })).toBe(true); // input untouched
    expect(projectCommandView(compacted, C1)).toBeUndefined();
    expect(compact(state, () => false)).toEqual(state);
  });

  it('decides exactly as before compaction', () => {
    const state = fold(history, AGENT);
    const compacted = compact(state);
    const inputs: LifecycleInput[] = [
      on.request(t(10), request(1)),
      on.request(t(10), request(3)),
      on.result(t(10), C1, 'success', RESULT_OK, 1),
      on.result(t(10), C1, 'failure', RESULT_KO),
      on.result(t(10), C1, 'failure', RESULT_KO, 2),
      on.delivered(t(10), C1, 1),
      on.acknowledged(t(10), C1),
      on.cancel(t(10), C1),
      on.acknowledged(t(10), C2, 2),
      on.tick(LATE),
    ];
    for (const input of inputs) expect(decide(compacted, input)).toStrictEqual(decide(state, input));
    expect(nextDeadline(compacted)).toEqual(nextDeadline(state));
    // and evolving keeps working on a compacted state (a claim about a compacted command changes nothing)
    const next = fold(decide(compacted, on.result(t(10), C1, 'failure', RESULT_KO)), compacted);
    expect(next.commands.get(C1)).toStrictEqual({ status: 'success', seq: 1 });
    expect(() => evolve(compacted, ev.failed(1, 1, 11))).toThrow(IllegalTransitionError);
  });
});

/* ------------------------------------------------------------------ property ------------- */

/** mulberry32: a tiny seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

describe('property: random inputs', () => {
  const RESULT_STATUSES: AgentResultStatus[] = ['success', 'failure', 'timed_out', 'rejected'];

  function randomInput(rand: () => number, state: AgentCommandState, nowMs: number): LifecycleInput {
    const int = (n: number): number => Math.floor(rand() * n);
    const now = new Date(nowMs);
    // a new id, a known one, or (rarely) one that is never requested
    const roll = rand();
    const n = roll < 0.05 ? 100_000 + int(5) : roll < 0.4 ? state.lastSeq + 1 + int(3) : 1 + int(state.lastSeq + 1);
    const commandId = id(n);
    const known = state.commands.get(commandId);
    const realSeq = known !== undefined ? seqOf(known) : 1 + int(50);
    const seq = rand() < 0.1 ? 1 + int(60) : realSeq; // sometimes a wrong seq
    const optionalSeq = rand() < 0.3 ? undefined : seq;
    switch (int(7)) {
      case 0:
      case 1:
        return on.request(
          now,
          request(n, {
            expiresAt: new Date(nowMs + (int(200) - 20) * 1000).toISOString(), // some already past
            timeout: 1 + int(60),
          }),
        );
      case 2:
        return on.cancel(now, commandId, 'random');
      case 3:
        return on.delivered(now, commandId, seq, rand() < 0.5 ? 'websocket' : 'long-poll');
      case 4:
        return on.acknowledged(now, commandId, optionalSeq);
      case 5: {
        const status = RESULT_STATUSES[int(RESULT_STATUSES.length)] ?? 'success';
        return on.result(now, commandId, status, status === 'success' ? RESULT_OK : RESULT_KO, optionalSeq);
      }
      default:
        return on.tick(now);
    }
  }

  it.each([1, 42, 20250101])(
    'seed %i: terminal statuses never change, seq stays dense, fold(log) = live state',
    (seed) => {
      const rand = prng(seed);
      const options = { timeoutGraceMs: 5_000 };
      let state = initialState(AGENT);
      let compacted = initialState(AGENT); // the same stream, compacted now and then
      let nowMs = T0;
      const log: CommandEvent[] = [];
      const terminalEvents = new Map<string, number>();
      const seen = new Set<CommandEventType>();

      // Plain checks in the loop (thousands of `expect` calls per step would be slow); one assertion at the end.
      const violations: string[] = [];
      const check = (ok: boolean, message: () => string): void => {
        if (!ok && violations.length < 20) violations.push(message());
      };

      for (let step = 0; step < 5000; step++) {
        nowMs += Math.floor(rand() * 8_000);
        const input = randomInput(rand, state, nowMs);
        const before = step % 250 === 0 ? JSON.stringify(snapshot(state)) : undefined;
        const events = decide(state, input, options);
        if (before !== undefined)
          check(JSON.stringify(snapshot(state)) === before, () => `step ${step}: decide mutated its state`);
        check(
          JSON.stringify(decide(compacted, input, options)) === JSON.stringify(events),
          () => `step ${step}: compaction changed a decision`,
        );

        let expectedSeq = state.lastSeq + 1;
        for (const event of events) {
          const parsed = commandEventSchemas[event.type].safeParse(event.data);
          check(
            parsed.success && JSON.stringify(parsed.data) === JSON.stringify(event.data),
            () => `step ${step}: invalid ${event.type}`,
          );
          seen.add(event.type);
          if (event.type === 'CommandIssued') {
            check(
              event.data.command.seq === expectedSeq,
              () => `step ${step}: issued seq ${event.data.command.seq}, expected ${expectedSeq}`,
            );
            expectedSeq++;
          }
          const to = STATUS_AFTER[event.type];
          if (to !== undefined && isTerminalStatus(to)) {
            terminalEvents.set(commandIdOf(event), (terminalEvents.get(commandIdOf(event)) ?? 0) + 1);
          }
        }

        const next = fold(events, state);
        for (const [commandId, entry] of state.commands) {
          if (isTerminalStatus(entry.status)) {
            check(
              statusOf(next, commandId) === entry.status,
              () => `step ${step}: terminal ${commandId} changed to ${statusOf(next, commandId)}`,
            );
          }
        }
        state = next;
        compacted = fold(events, compacted);
        if (step % 100 === 0) compacted = compact(compacted);
        log.push(...events);

        if (input.type === 'Tick') {
          // every due deadline was enforced: the next one is in the future
          const deadline = nextDeadline(state, options);
          check(
            deadline === undefined || deadline.getTime() > nowMs,
            () => `step ${step}: deadline ${deadline?.toISOString()} left due`,
          );
        }
      }
      expect(violations).toEqual([]);
      expect(state.lastSeq).toBeGreaterThan(200); // the run issued many commands

      // seq dense and in order: 1..lastSeq, one per command
      const seqs = [...state.commands.values()].map(seqOf);
      expect(seqs).toEqual(Array.from({ length: state.lastSeq }, (_, k) => k + 1));
      expect(log.filter((e) => e.type === 'CommandIssued').length).toBe(state.lastSeq);
      // a command finishes at most once
      for (const count of terminalEvents.values()) expect(count).toBe(1);
      // the live state is a fold of the log (projection rebuild = live)
      expect(fold(log, AGENT)).toEqual(state);
      expect(summary(compacted)).toEqual(summary(state));
      // the projection reducer folded over the same log gives the same views
      const views = new Map<string, CommandView>();
      for (const event of log) {
        const next = applyCommandEvent(views.get(commandIdOf(event)), event);
        if (next !== undefined) views.set(commandIdOf(event), next);
      }
      expect(views.size).toBe(state.commands.size);
      for (const commandId of state.commands.keys()) {
        expect(views.get(commandId)).toStrictEqual(projectCommandView(state, commandId));
      }
      // the run exercised the interesting paths
      for (const type of [
        'CommandIssued',
        'CommandSent',
        'CommandInProgress',
        'CommandSucceeded',
        'CommandExpired',
        'CommandCancelled',
        'CommandTimedOut',
        'CommandClaimIgnored',
      ] as const) {
        expect(seen).toContain(type);
      }
    },
  );

  function summary(state: AgentCommandState): [string, CommandStatus, number][] {
    return [...state.commands].map(([commandId, entry]) => [commandId, entry.status, seqOf(entry)]);
  }
});
