import { z } from 'zod';

const groupName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9._-]+$/, 'must contain only letters, digits and ._-');

/**
 * The actions Herald knows, with the schema of their arguments. The Wazuh 6.0 agent executes
 * `set-group`, `fetch-config` and `restart`; Herald's reference agent adds `get-config`.
 */
export const ACTION_CATALOG = {
  'set-group': z.object({ groups: z.array(groupName).min(1).max(128) }).strict(),
  'fetch-config': z.object({}).strict(),
  restart: z.object({}).strict(),
  'get-config': z.object({}).strict(),
  upgrade: z
    .object({
      package: z.string().min(1).max(255),
      version: z.string().min(1).max(64).optional(),
      sha256: z
        .string()
        .regex(/^[0-9a-f]{64}$/, 'must be a hex SHA-256')
        .optional(),
    })
    .strict(),
  'run-active-response': z
    .object({
      script: z
        .string()
        .min(1)
        .max(255)
        .regex(/^[A-Za-z0-9._-]+$/, 'must be a script name (letters, digits, ._-)'),
      arguments: z.array(z.string().max(4096)).max(64).default([]),
      timeout: z.number().int().positive().max(86400).optional(),
    })
    .strict(),
} as const;

export type KnownActionName = keyof typeof ACTION_CATALOG;
export const DEFAULT_ACTION_VERSION = 'v1';

export function isKnownAction(name: string): name is KnownActionName {
  return Object.prototype.hasOwnProperty.call(ACTION_CATALOG, name);
}
