import { actionNameSchema, MAX_FRAME_BYTES, type AgentResultStatus, type CommandDocument } from '@herald/contracts';
import type { AgentIdentity, CommandStore, StoredResult } from './command-store';

/** Version the agent reports at enrollment and in `get-config`. */
export const AGENT_VERSION = 'v6.0.0';

/** Result codes of the Wazuh command protocol. */
export const ResultCodes = { success: 0, failure: 1, inProgress: 2, timedOut: 3 } as const;

export function codeFor(status: AgentResultStatus): number {
  switch (status) {
    case 'success':
      return ResultCodes.success;
    case 'failure':
    case 'rejected':
      return ResultCodes.failure;
    case 'timed_out':
      return ResultCodes.timedOut;
  }
}

export interface ExecutionContext {
  command: CommandDocument;
  identity: AgentIdentity;
  /** Every action name this agent executes. */
  capabilities: readonly string[];
  /** Aborted when the command's timeout passes or the agent stops. */
  signal: AbortSignal;
}

export type ExecutorOutcome =
  | {
      kind: 'done';
      status: AgentResultStatus;
      message: string;
      data?: unknown;
      /** Local effect, committed in the same transaction as the result (exactly once). */
      commit?: (store: CommandStore) => void;
    }
  /** The agent must exit (restart); the command stays `running` and completes at the next start. */
  | { kind: 'exit'; reason: 'restart' };

export interface ActionDefinition {
  run(args: Record<string, unknown>, context: ExecutionContext): Promise<ExecutorOutcome> | ExecutorOutcome;
  /**
   * For actions that end the agent: the result to report when the agent starts again and finds
   * the command `running`. Without it such a command is reported as a failure.
   */
  completedByRestart?: Omit<StoredResult, 'code'>;
}

export type ActionDefinitions = Readonly<Record<string, ActionDefinition>>;

export function done(status: AgentResultStatus, message: string, data?: unknown): ExecutorOutcome {
  return data === undefined ? { kind: 'done', status, message } : { kind: 'done', status, message, data };
}

const MAX_TIMER_MS = 2 ** 31 - 1;

export const INTERRUPTED_MESSAGE = 'agent stopped while the command ran';

/** The built-in actions: `get-config`, `set-group`, `restart`. */
export const builtInActions: ActionDefinitions = {
  'get-config': {
    run: (_args, { identity, capabilities }) =>
      done('success', 'agent configuration', {
        uuid: identity.uuid,
        name: identity.name,
        groups: identity.groups,
        version: AGENT_VERSION,
        capabilities,
      }),
  },
  'set-group': {
    run: (args) => {
      const groups = args['groups'];
      if (
        !Array.isArray(groups) ||
        groups.length === 0 ||
        !groups.every((g): g is string => typeof g === 'string' && g.trim().length > 0)
      ) {
        return done('rejected', 'invalid args: groups must be a non-empty array of non-empty strings');
      }
      const unique = [...new Set(groups.map((g) => g.trim()))];
      return {
        kind: 'done',
        status: 'success',
        message: `groups set to ${unique.join(', ')}`,
        data: { groups: unique },
        commit: (store) => store.setGroups(unique),
      };
    },
  },
  restart: {
    run: () => ({ kind: 'exit', reason: 'restart' }),
    completedByRestart: { status: 'success', message: 'agent restarted' },
  },
};

const MAX_MESSAGE = 65_536;
/** Result data bigger than this (as JSON) is dropped: the frame must stay under MAX_FRAME_BYTES. */
const MAX_DATA_BYTES = MAX_FRAME_BYTES / 2;

/** The result to store and report for a finished command: always a valid, sendable frame body. */
export function toResult(status: AgentResultStatus, message: string, data?: unknown): StoredResult {
  const cut = ' [truncated]';
  let text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - cut.length)}${cut}` : message;
  let kept: unknown;
  if (data !== undefined) {
    let json: string | undefined;
    try {
      json = JSON.stringify(data);
    } catch {
      json = undefined;
    }
    if (json === undefined) {
      text = `${text.slice(0, MAX_MESSAGE - 40)} (result data not serializable)`;
    } else if (Buffer.byteLength(json) > MAX_DATA_BYTES) {
      text = `${text.slice(0, MAX_MESSAGE - 40)} (result data too large: dropped)`;
    } else {
      kept = JSON.parse(json);
    }
  }
  return { status, code: codeFor(status), message: text, ...(kept !== undefined ? { data: kept } : {}) };
}

/**
 * The action registry: built-ins plus whatever the embedder adds (a simulator's or a test's
 * own actions). Runs one command and turns every way it can end into a result.
 */
export class Executors {
  private readonly actions: Map<string, ActionDefinition>;

  constructor(extra: ActionDefinitions = {}) {
    for (const name of Object.keys(extra)) {
      if (!actionNameSchema.safeParse(name).success) {
        throw new Error(`invalid action name "${name}": lower-case letters, digits and dashes, at most 64`);
      }
    }
    this.actions = new Map(Object.entries({ ...builtInActions, ...extra }));
  }

  /** Action names, sorted: the `capabilities` of `hello`. */
  get capabilities(): string[] {
    return [...this.actions.keys()].sort();
  }

  /** The result of a command found `running` when the agent starts (it never runs it again). */
  resultAfterInterruption(command: CommandDocument | undefined): StoredResult {
    const completed = command && this.actions.get(command.action.name)?.completedByRestart;
    const outcome = completed ?? { status: 'failure' as const, message: INTERRUPTED_MESSAGE };
    return toResult(outcome.status, outcome.message, outcome.data);
  }

  /**
   * Run a command, enforcing its timeout (seconds). Never throws: an unsupported action is
   * `rejected`, an executor error a `failure`, an overrun `timed_out` (code 3).
   */
  async execute(
    context: Omit<ExecutionContext, 'signal' | 'capabilities'>,
    stop?: AbortSignal,
  ): Promise<ExecutorOutcome> {
    const { command } = context;
    const action = this.actions.get(command.action.name);
    if (!action) return done('rejected', `unsupported action ${command.action.name}`);

    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let onStop: (() => void) | undefined;
    // The executor may ignore its signal: the race ends the command anyway.
    const cutShort = new Promise<ExecutorOutcome>((resolve) => {
      timer = setTimeout(
        () => {
          controller.abort(new Error('timed out'));
          resolve(done('timed_out', `timed out after ${command.timeout} s`));
        },
        Math.min(command.timeout * 1000, MAX_TIMER_MS),
      );
      onStop = (): void => {
        controller.abort(new Error('agent stopping'));
        resolve(done('failure', INTERRUPTED_MESSAGE));
      };
      if (stop?.aborted) onStop();
      else stop?.addEventListener('abort', onStop, { once: true });
    });
    const run = (async (): Promise<ExecutorOutcome> => {
      try {
        return await action.run(command.action.args, {
          ...context,
          capabilities: this.capabilities,
          signal: controller.signal,
        });
      } catch (error) {
        return done('failure', error instanceof Error ? error.message : String(error));
      }
    })();
    try {
      return await Promise.race([run, cutShort]);
    } finally {
      clearTimeout(timer);
      if (onStop) stop?.removeEventListener('abort', onStop);
    }
  }
}
