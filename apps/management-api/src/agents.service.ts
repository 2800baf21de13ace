import { hostSchema, uuidSchema } from '@herald/contracts';
import type { AgentDirectory } from '@herald/agents';
import { hashSecret } from '@herald/auth';
import { ConflictError, parseInput } from '@herald/platform';
import { z } from 'zod';

const printable = /^[\x20-\x7e]+$/;

export const registerAgentSchema = z
  .object({
    id: uuidSchema,
    name: z.string().min(1).max(255).regex(printable, 'must be printable ASCII'),
    key: z
      .string()
      .min(32, 'must be at least 32 characters')
      .max(128, 'must be at most 128 characters')
      .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces'),
    type: z.string().min(1).max(64).default('Endpoint'),
    version: z.string().min(1).max(64).default('unknown'),
    groups: z
      .array(z.string().regex(/^[A-Za-z0-9._-]{1,255}$/, 'must be a group name'))
      .max(128)
      .optional(),
    host: hostSchema.optional(),
  })
  .strict();

/** Enrollment (`POST /agents`, Wazuh management API compatible). */
export class AgentsService {
  constructor(private readonly directory: AgentDirectory) {}

  async register(body: unknown, registeredBy: string): Promise<{ id: string }> {
    const input = parseInput(registerAgentSchema, body);
    const uuid = input.id.toLowerCase();
    const registered = await this.directory.register({
      uuid,
      name: input.name,
      keyHash: await hashSecret(input.key),
      type: input.type,
      version: input.version,
      groups: input.groups ?? ['default'],
      ...(input.host ? { host: input.host } : {}),
      registeredAt: new Date().toISOString(),
      registeredBy,
    });
    if (!registered) throw new ConflictError(`Agent ${uuid} already exists`);
    return { id: uuid };
  }
}
