import { z } from 'zod';
import { uuidv7 } from './ids';

/**
 * Every record in the log is a versioned envelope. `type` names the event (past tense) or
 * request (imperative); `version` is the schema version of `data` for that type.
 */
export const envelopeSchema = z.object({
  type: z.string().min(1),
  version: z.number().int().positive(),
  id: z.string().min(1),
  occurredAt: z.string().datetime(),
  agentUuid: z.string().optional(),
  correlationId: z.string().optional(),
  data: z.unknown(),
});
export type Envelope<T = unknown> = Omit<z.infer<typeof envelopeSchema>, 'data'> & { data: T };

export function envelope<T>(
  type: string,
  data: T,
  opts: { agentUuid?: string; correlationId?: string; version?: number; now?: Date } = {},
): Envelope<T> {
  return {
    type,
    version: opts.version ?? 1,
    id: uuidv7(),
    occurredAt: (opts.now ?? new Date()).toISOString(),
    ...(opts.agentUuid !== undefined ? { agentUuid: opts.agentUuid } : {}),
    ...(opts.correlationId !== undefined ? { correlationId: opts.correlationId } : {}),
    data,
  };
}

export class EnvelopeParseError extends Error {
  readonly code = 'envelope_invalid';
  constructor(readonly reason: string) {
    super(reason);
  }
}

/**
 * Parse a raw log value into an envelope whose `data` matches the schema registered for its
 * type. Throws EnvelopeParseError with a readable reason (consumers dead-letter it).
 */
export function parseEnvelope<M extends Record<string, z.ZodTypeAny>>(
  raw: string,
  schemas: M,
): { [K in keyof M & string]: Envelope<z.infer<M[K]>> & { type: K } }[keyof M & string] {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new EnvelopeParseError(`not JSON: ${(e as Error).message}`);
  }
  const env = envelopeSchema.safeParse(json);
  if (!env.success) throw new EnvelopeParseError(`bad envelope: ${formatZodError(env.error)}`);
  const schema: z.ZodTypeAny | undefined = schemas[env.data.type];
  if (!schema) throw new EnvelopeParseError(`unknown record type "${env.data.type}"`);
  const data: z.SafeParseReturnType<unknown, unknown> = schema.safeParse(env.data.data);
  if (!data.success) throw new EnvelopeParseError(`bad ${env.data.type}: ${formatZodError(data.error)}`);
  return { ...env.data, data: data.data } as never;
}

/** "field.path message; other.field message" — the style of every validation error we emit. */
export function formatZodError(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.join('.');
      return path ? `${path} ${i.message}` : i.message;
    })
    .join('; ');
}
