import { isTerminal, type CommandEvent, type CommandView } from '@herald/contracts';

/**
 * The projected view of one command is a fold of its events in the `commands` stream. The
 * orchestrator only writes legal transitions, so this fold trusts the order; it still never
 * moves a terminal view (a replayed or duplicate event is a no-op).
 * Returns undefined when the event is about a command whose CommandIssued was not seen.
 */
export function applyCommandEvent(view: CommandView | undefined, event: CommandEvent): CommandView | undefined {
  if (event.type === 'CommandIssued') {
    if (view) return view;
    const c = event.data.command;
    return {
      id: c.id,
      requestId: c.requestId,
      agent: c.agentUuid,
      seq: c.seq,
      action: c.action,
      status: 'pending',
      source: c.source,
      user: c.user,
      expiresAt: c.expiresAt,
      timeout: c.timeout,
      timestamps: { issued: c.issuedAt },
      waitingReason: 'waiting for the agent to connect',
    };
  }
  if (!view) return undefined;
  if (event.type === 'CommandClaimIgnored') {
    return { ...view, ignoredClaims: (view.ignoredClaims ?? 0) + 1 };
  }
  if (isTerminal(view.status)) return view;
  const { waitingReason: _waiting, ...rest } = view;
  switch (event.type) {
    case 'CommandSent':
      if (view.status !== 'pending') return view;
      return { ...rest, status: 'sent', timestamps: { ...view.timestamps, sent: event.data.at } };
    case 'CommandInProgress':
      if (view.status === 'in_progress') return view;
      return { ...rest, status: 'in_progress', timestamps: { ...view.timestamps, inProgress: event.data.at } };
    case 'CommandSucceeded':
      return finish(rest, 'success', event.data.at, event.data.result);
    case 'CommandFailed':
      return finish(rest, 'failure', event.data.at, event.data.result);
    case 'CommandTimedOut':
      return finish(rest, 'timed_out', event.data.at, event.data.result);
    case 'CommandRejected':
      return finish(rest, 'rejected', event.data.at, event.data.result);
    case 'CommandExpired':
      return finish(rest, 'expired', event.data.at);
    case 'CommandCancelled':
      return finish(rest, 'cancelled', event.data.at);
    default: {
      const unhandled: never = event;
      return unhandled;
    }
  }
}

function finish(
  view: CommandView,
  status: CommandView['status'],
  at: string,
  result?: CommandView['result'],
): CommandView {
  return { ...view, status, ...(result ? { result } : {}), timestamps: { ...view.timestamps, finished: at } };
}

/** The command id an event is about. */
export function commandIdOf(event: CommandEvent): string {
  return event.type === 'CommandIssued' ? event.data.command.id : event.data.commandId;
}
