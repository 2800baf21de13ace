import type { z } from 'zod';
import { ValidationError } from './herald.errors';

/**
 * Parses untrusted input with a schema; a failure is a 400 naming every bad field. `what` names
 * the input (`body`, `query`) or, for a nested part such as `action.args`, prefixes field paths.
 */
export function parseInput<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, input: unknown, what = 'body'): T {
  const prefix = what === 'body' || what === 'query' ? '' : `${what}.`;
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const message = result.error.issues
    .map((i) => {
      const path = i.path.length ? prefix + i.path.join('.') : what;
      if (i.code === 'invalid_type' && i.received === 'undefined') return `${path} is required`;
      if (i.code === 'unrecognized_keys') return `${what} has unknown field(s): ${i.keys.join(', ')}`;
      return `${path} ${lowerFirst(i.message)}`;
    })
    .join('; ');
  throw new ValidationError(message);
}

function lowerFirst(s: string): string {
  return s.length > 1 && /[A-Z][a-z]/.test(s.slice(0, 2)) ? s[0]?.toLowerCase() + s.slice(1) : s;
}
