import { z } from 'zod';
import {
  actionSchema,
  agentResultStatusSchema,
  commandResultSchema,
  commandSchema,
  uuidSchema,
} from './command.schema';

/* ---------- topic `command-requests` (written by the management API) ---------- */

export const commandRequestedSchema = z.object({
  commandId: uuidSchema,
  requestId: z.string().min(1).max(128),
  agentUuid: uuidSchema,
  action: actionSchema,
  source: z.string().max(128),
  user: z.string().max(128),
  requestedAt: z.string().datetime(),
  expiresAt: z.string().datetime(),
  timeout: z.number().int().positive(),
});
export type CommandRequested = z.infer<typeof commandRequestedSchema>;

export const cancelRequestedSchema = z.object({
  commandId: uuidSchema,
  user: z.string().max(128),
});
export type CancelRequested = z.infer<typeof cancelRequestedSchema>;

export const commandRequestSchemas = {
  CommandRequested: commandRequestedSchema,
  CancelRequested: cancelRequestedSchema,
};

/* ---------- topic `agent-feedback` (written by the comms API) ---------- */

export const commandDeliveredSchema = z.object({
  commandId: uuidSchema,
  seq: z.number().int().positive(),
  via: z.enum(['websocket', 'long-poll']),
});
export const commandAcknowledgedSchema = z.object({
  commandId: uuidSchema,
  seq: z.number().int().positive().optional(),
});
export const commandResultReportedSchema = z.object({
  commandId: uuidSchema,
  seq: z.number().int().positive().optional(),
  status: agentResultStatusSchema,
  result: commandResultSchema,
});
export type CommandDelivered = z.infer<typeof commandDeliveredSchema>;
export type CommandAcknowledged = z.infer<typeof commandAcknowledgedSchema>;
export type CommandResultReported = z.infer<typeof commandResultReportedSchema>;

export const agentFeedbackSchemas = {
  CommandDelivered: commandDeliveredSchema,
  CommandAcknowledged: commandAcknowledgedSchema,
  CommandResultReported: commandResultReportedSchema,
};

/* ---------- topic `commands` (written only by the orchestrator) ---------- */

const ref = { commandId: uuidSchema, seq: z.number().int().positive() };
const at = z.string().datetime();

export const commandEventSchemas = {
  CommandIssued: z.object({ command: commandSchema }),
  CommandSent: z.object({ ...ref, at, via: z.enum(['websocket', 'long-poll']) }),
  CommandInProgress: z.object({ ...ref, at }),
  CommandSucceeded: z.object({ ...ref, at, result: commandResultSchema }),
  CommandFailed: z.object({ ...ref, at, result: commandResultSchema }),
  CommandTimedOut: z.object({ ...ref, at, result: commandResultSchema, by: z.enum(['agent', 'server']) }),
  CommandRejected: z.object({ ...ref, at, result: commandResultSchema }),
  CommandExpired: z.object({ ...ref, at }),
  CommandCancelled: z.object({ ...ref, at, user: z.string() }),
  /** A late, duplicate or illegal claim: recorded for audit, never applied. */
  CommandClaimIgnored: z.object({
    commandId: z.string(),
    seq: z.number().int().positive().optional(),
    at,
    claim: z.string(),
    reason: z.string(),
  }),
};

type CommandEventSchemas = typeof commandEventSchemas;
export type CommandEventType = keyof CommandEventSchemas;
export type CommandEvent = {
  [K in CommandEventType]: { type: K; data: z.infer<CommandEventSchemas[K]> };
}[CommandEventType];

/* ---------- topic `agents` ---------- */

export const hostSchema = z
  .object({
    architecture: z.string().max(64).optional(),
    hostname: z.string().max(255).optional(),
    ip: z.array(z.string().max(64)).max(64).optional(),
    os: z
      .object({
        name: z.string().max(128).optional(),
        type: z.string().max(64).optional(),
        version: z.string().max(64).optional(),
      })
      .optional(),
  })
  .strict();

export const agentRegisteredSchema = z.object({
  uuid: uuidSchema,
  name: z.string(),
  keyHash: z.string(),
  type: z.string(),
  version: z.string(),
  groups: z.array(z.string()),
  host: hostSchema.optional(),
  registeredAt: at,
  registeredBy: z.string(),
});
export type AgentRegistered = z.infer<typeof agentRegisteredSchema>;

export const agentEventSchemas = {
  AgentRegistered: agentRegisteredSchema,
};
