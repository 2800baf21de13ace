import type { Command, CommandEvent, CommandStatus, CommandView } from '@herald/contracts';
import { assertNever, isLive, transitionOf, type AgentCommandState } from './command-lifecycle';

/**
 * The read side of the command lifecycle: the contracts' `CommandView` of one command.
 * - `projectCommandView(state, id)` reads it from the orchestrator's state;
 * - `applyCommandEvent(view, event)` folds the `commands` stream one command at a time (indexer,
 *   replay backlog) without holding an agent's whole state.
 * Both give the same view for the same log (tested), and share `evolve`'s transition table.
 */

/** The view of one command in `state`; undefined if the command is unknown or compacted. */
export function projectCommandView(state: AgentCommandState, commandId: string): CommandView | undefined {
  const entry = state.commands.get(commandId);
  if (entry === undefined || !isLive(entry)) return undefined;
  return withWaitingReason({
    ...issuedView(entry.command),
    status: entry.status,
    ...(entry.result !== undefined ? { result: entry.result } : {}),
    timestamps: {
      issued: entry.command.issuedAt,
      ...(entry.sentAt !== undefined ? { sent: entry.sentAt } : {}),
      ...(entry.inProgressAt !== undefined ? { inProgress: entry.inProgressAt } : {}),
      ...(entry.finishedAt !== undefined ? { finished: entry.finishedAt } : {}),
    },
    ...(entry.ignoredClaims !== undefined ? { ignoredClaims: entry.ignoredClaims } : {}),
  });
}

/** The id of the command an event is about. */
export function commandIdOf(event: CommandEvent): string {
  return event.type === 'CommandIssued' ? event.data.command.id : event.data.commandId;
}

/**
 * The projection's reducer, one command at a time: applies `event` to the view of its command.
 * Unlike `evolve` it is lenient, because a consumer may see an event twice (at-least-once) or
 * start from a stored view: a repeated `CommandIssued`, an event that is not legal from the
 * view's status (already applied; terminal views never move) or whose seq is not the command's
 * leaves the view unchanged (same object). Returns undefined for an event about a command it has
 * no view of (never issued, or issued before the consumer's start). Never mutates `view`.
 * A `CommandClaimIgnored` increments `ignoredClaims` (a replayed one counts twice: the store's
 * offset-based versioning is what makes replays harmless).
 */
export function applyCommandEvent(view: CommandView | undefined, event: CommandEvent): CommandView | undefined {
  if (event.type === 'CommandIssued') {
    if (view !== undefined) return view;
    const { command } = event.data;
    return withWaitingReason({ ...issuedView(command), status: 'pending', timestamps: { issued: command.issuedAt } });
  }
  if (view === undefined) return undefined;
  if (event.type === 'CommandClaimIgnored') return { ...view, ignoredClaims: (view.ignoredClaims ?? 0) + 1 };

  const rule = transitionOf(event.type);
  if (event.data.seq !== view.seq || !rule.from.includes(view.status)) return view;
  const { waitingReason: _previous, ...rest } = view;
  switch (event.type) {
    case 'CommandSent':
      return withWaitingReason({ ...rest, status: rule.to, timestamps: { ...view.timestamps, sent: event.data.at } });
    case 'CommandInProgress':
      return withWaitingReason({
        ...rest,
        status: rule.to,
        timestamps: { ...view.timestamps, inProgress: event.data.at },
      });
    case 'CommandSucceeded':
    case 'CommandFailed':
    case 'CommandTimedOut':
    case 'CommandRejected':
      return {
        ...rest,
        status: rule.to,
        result: event.data.result,
        timestamps: { ...view.timestamps, finished: event.data.at },
      };
    case 'CommandExpired':
    case 'CommandCancelled':
      return { ...rest, status: rule.to, timestamps: { ...view.timestamps, finished: event.data.at } };
    default:
      return assertNever(event);
  }
}

/** What an active command is waiting for (shown to operators); undefined once terminal. */
export function waitingReasonOf(status: CommandStatus): string | undefined {
  switch (status) {
    case 'pending':
      return 'waiting for agent to connect';
    case 'sent':
      return 'waiting for agent to acknowledge';
    case 'in_progress':
      return 'waiting for agent to report the result';
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

/** The fields of a view that come from the command itself. */
function issuedView(command: Command): Omit<CommandView, 'status' | 'timestamps'> {
  return {
    id: command.id,
    requestId: command.requestId,
    agent: command.agentUuid,
    seq: command.seq,
    action: command.action,
    source: command.source,
    user: command.user,
    expiresAt: command.expiresAt,
    timeout: command.timeout,
  };
}

function withWaitingReason(view: CommandView): CommandView {
  const waitingReason = waitingReasonOf(view.status);
  return waitingReason !== undefined ? { ...view, waitingReason } : view;
}
