import { z } from 'zod';
import { UUID_PATTERN } from './ids';

export const uuidSchema = z.string().regex(UUID_PATTERN, 'is not a valid uuid');

export const COMMAND_STATUSES = [
  'pending',
  'sent',
  'in_progress',
  'success',
  'failure',
  'timed_out',
  'expired',
  'cancelled',
  'rejected',
] as const;
export const commandStatusSchema = z.enum(COMMAND_STATUSES);
export type CommandStatus = z.infer<typeof commandStatusSchema>;

export const TERMINAL_STATUSES: ReadonlySet<CommandStatus> = new Set<CommandStatus>([
  'success',
  'failure',
  'timed_out',
  'expired',
  'cancelled',
  'rejected',
]);

export function isTerminal(status: CommandStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** What an agent can report as the outcome of a command. */
export const AGENT_RESULT_STATUSES = ['success', 'failure', 'timed_out', 'rejected'] as const;
export const agentResultStatusSchema = z.enum(AGENT_RESULT_STATUSES);
export type AgentResultStatus = z.infer<typeof agentResultStatusSchema>;

export const actionNameSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z][a-z0-9-]*$/, 'must be lower-case letters, digits and dashes');

export const actionSchema = z.object({
  name: actionNameSchema,
  version: z.string().min(1).max(32),
  args: z.record(z.unknown()),
});
export type Action = z.infer<typeof actionSchema>;

export const commandResultSchema = z.object({
  code: z.number().int(),
  message: z.string().max(65536),
  data: z.unknown().optional(),
});
export type CommandResult = z.infer<typeof commandResultSchema>;

/** A command as the orchestrator issues it (the payload of CommandIssued). */
export const commandSchema = z.object({
  id: uuidSchema,
  requestId: z.string().min(1).max(128),
  seq: z.number().int().positive(),
  agentUuid: uuidSchema,
  action: actionSchema,
  source: z.string().max(128),
  user: z.string().max(128),
  issuedAt: z.string().datetime(),
  expiresAt: z.string().datetime(),
  timeout: z.number().int().positive(),
});
export type Command = z.infer<typeof commandSchema>;

/** The command document on the wire to agents (Wazuh comms API shape plus Herald's `seq`). */
export interface CommandDocument {
  document_id: string;
  request_id: string;
  order_id: string;
  source: string;
  user: string;
  target: { type: 'agent'; id: string };
  action: Action;
  timeout: number;
  status: CommandStatus;
  seq: number;
}

export function toCommandDocument(command: Command, status: CommandStatus = 'sent'): CommandDocument {
  return {
    document_id: command.id,
    request_id: command.requestId,
    order_id: command.requestId,
    source: command.source,
    user: command.user,
    target: { type: 'agent', id: command.agentUuid },
    action: command.action,
    timeout: command.timeout,
    status,
    seq: command.seq,
  };
}

/** The projected state of one command (what `GET /commands/{id}` returns, field for field). */
export interface CommandView {
  id: string;
  requestId: string;
  agent: string;
  seq: number;
  action: Action;
  status: CommandStatus;
  result?: CommandResult;
  source: string;
  user: string;
  expiresAt: string;
  timeout: number;
  timestamps: { issued: string; sent?: string; inProgress?: string; finished?: string };
  waitingReason?: string;
  ignoredClaims?: number;
}
