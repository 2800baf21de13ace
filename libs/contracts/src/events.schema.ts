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

/**
 * The `agents` topic is compacted (Kafka keeps the newest record per key), so every record is a
 * complete snapshot of one FACET of an agent, under its own key:
 *
 * | key                | types                                           | written by                        |
 * |--------------------|-------------------------------------------------|-----------------------------------|
 * | `<uuid>`           | AgentRegistered, AgentKeyRotated, AgentRevoked  | management API (enrollment, key request) |
 * | `<uuid>/groups`    | AgentGroupsChanged                              | management API, orchestrator (set-group) |
 * | `<uuid>/presence`  | AgentPresenceChanged                            | comms API                         |
 *
 * Readers fold by facet: the newest identity snapshot, the newest groups record (it overrides the
 * identity's initial `groups`), the newest presence record. `agentKeys` builds the keys.
 */
export const agentKeys = {
  identity: (uuid: string): string => uuid,
  groups: (uuid: string): string => `${uuid}/groups`,
  presence: (uuid: string): string => `${uuid}/presence`,
} as const;

/** The identity facet: everything needed to authenticate the agent. */
export const agentIdentitySchema = z.object({
  uuid: uuidSchema,
  name: z.string(),
  keyHash: z.string(),
  type: z.string(),
  version: z.string(),
  /** Groups at registration; superseded by the newest AgentGroupsChanged. */
  groups: z.array(z.string()),
  host: hostSchema.optional(),
  registeredAt: at,
  registeredBy: z.string(),
  /** How the agent was enrolled. */
  source: z.enum(['enrollment', 'key-request']).optional(),
  /** Legacy numeric id (3–8 digits) given by a key-request source. */
  legacyId: z.string().optional(),
  /** Addresses/CIDR ranges the agent may authenticate from (key request); absent or ['any']: anywhere. */
  allowedSources: z.array(z.string()).optional(),
  keyRotatedAt: at.optional(),
  keyRotatedBy: z.string().optional(),
  revokedAt: at.optional(),
  revokedBy: z.string().optional(),
});
export type AgentIdentity = z.infer<typeof agentIdentitySchema>;
/** Kept for readers written before the facets: AgentRegistered's payload is the identity snapshot. */
export const agentRegisteredSchema = agentIdentitySchema;
export type AgentRegistered = AgentIdentity;

export const agentGroupsChangedSchema = z.object({
  uuid: uuidSchema,
  groups: z.array(z.string()),
  changedAt: at,
  /** Operator user name, or `agent` when a successful set-group command changed them. */
  changedBy: z.string(),
  via: z.enum(['operator', 'set-group', 'group-deleted']),
  /** The set-group command that changed them, when `via` is `set-group`. */
  commandId: uuidSchema.optional(),
});
export type AgentGroupsChanged = z.infer<typeof agentGroupsChangedSchema>;

export const agentPresenceChangedSchema = z.object({
  uuid: uuidSchema,
  state: z.enum(['connected', 'disconnected']),
  /** Transport of the session that changed the state. */
  transport: z.enum(['websocket', 'long-poll', 'http']).optional(),
  at,
  /** Last time the agent was heard from (any request or frame). */
  lastContact: at,
  userAgent: z.string().max(512).optional(),
  version: z.string().max(64).optional(),
  /** Which comms-api instance holds the session. */
  gateway: z.string().max(128).optional(),
});
export type AgentPresenceChanged = z.infer<typeof agentPresenceChangedSchema>;

export const agentEventSchemas = {
  AgentRegistered: agentIdentitySchema,
  AgentKeyRotated: agentIdentitySchema,
  AgentRevoked: agentIdentitySchema,
  AgentGroupsChanged: agentGroupsChangedSchema,
  AgentPresenceChanged: agentPresenceChangedSchema,
};
export type AgentEventType = keyof typeof agentEventSchemas;

/* ---------- topic `groups` (key = group name; not compacted: configuration history is kept) ---------- */

/** A group name: also the file name `<name>.yml` agents download, so no path characters. */
export const groupNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'must be letters, digits, _ . - (not starting with . or -)');

export const groupCreatedSchema = z.object({
  name: groupNameSchema,
  description: z.string().max(1024).optional(),
  createdAt: at,
  createdBy: z.string(),
});
export const groupConfigurationUpdatedSchema = z.object({
  name: groupNameSchema,
  /** The YAML text agents download as `<name>.yml`. */
  yaml: z.string(),
  /** sha256 (hex) of the UTF-8 YAML: the configuration's identity. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** 1, 2, 3 … per group. */
  version: z.number().int().positive(),
  updatedAt: at,
  updatedBy: z.string(),
});
export const groupDeletedSchema = z.object({
  name: groupNameSchema,
  deletedAt: at,
  deletedBy: z.string(),
});
export type GroupCreated = z.infer<typeof groupCreatedSchema>;
export type GroupConfigurationUpdated = z.infer<typeof groupConfigurationUpdatedSchema>;
export type GroupDeleted = z.infer<typeof groupDeletedSchema>;

export const groupEventSchemas = {
  GroupCreated: groupCreatedSchema,
  GroupConfigurationUpdated: groupConfigurationUpdatedSchema,
  GroupDeleted: groupDeletedSchema,
};
