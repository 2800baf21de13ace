import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * What may be asked of a key source and what it may answer (the key-request tables: every field
 * checked, anything else refused). Nothing that fails `lookupValue` ever reaches the program or
 * the socket.
 */

export type LookupKind = 'id' | 'ip';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const LEGACY_ID = /^[0-9]{3,8}$/;

/** The value to send for a look-up, or undefined when it is not a UUID / 3–8 digits / an IP address. */
export function lookupValue(kind: LookupKind, value: string): string | undefined {
  if (kind === 'id') {
    const lower = value.toLowerCase();
    return UUID.test(lower) || LEGACY_ID.test(value) ? lower : undefined;
  }
  return isIP(value) !== 0 ? value : undefined;
}

const printable = (max: number) =>
  z
    .string()
    .min(1, 'must not be empty')
    .refine((v) => Buffer.byteLength(v, 'utf8') <= max, `must be at most ${max} bytes`)
    .refine((v) => /^[\x20-\x7e]+$/.test(v), 'must be printable ASCII');

/** An address, a CIDR range (IPv4 or IPv6), or `any`. */
export const allowedSourceSchema = z.string().refine((v) => {
  if (v === 'any') return true;
  const [address, bits, ...rest] = v.split('/');
  if (rest.length > 0 || address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  if (bits === undefined) return true;
  if (!/^[0-9]{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}, 'must be an IP address, a CIDR range or "any"');

const foundSchema = z
  .object({
    error: z.literal(0),
    data: z
      .object({
        id: z.string().refine((v) => LEGACY_ID.test(v) || UUID.test(v), 'must be 3-8 digits or a UUID'),
        name: z
          .string()
          .min(1, 'must not be empty')
          .refine((v) => Buffer.byteLength(v, 'utf8') <= 128, 'must be at most 128 bytes')
          .refine((v) => /^[A-Za-z0-9._-]+$/.test(v), 'may contain only letters, digits, "-", "_" and "."'),
        ip: allowedSourceSchema,
        key: printable(128),
      })
      .strict(),
  })
  .strict();

const notFoundSchema = z
  .object({
    error: z.number().int().min(1).max(9),
    message: printable(1024),
  })
  .strict();

export type KeySourceAnswer =
  | { found: true; id: string; name: string; ip: string; key: string }
  | { found: false; error: number; message: string };

export class InvalidAnswerError extends Error {
  readonly code = 'key_request_invalid_answer';
}

/** Parses a key source's output: one JSON object, nothing after it, every field valid. */
export function parseAnswer(output: string): KeySourceAnswer {
  const text = output.trim();
  if (text.length === 0) throw new InvalidAnswerError('no output');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new InvalidAnswerError('output is not one JSON object (or has trailing data)');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InvalidAnswerError('output is not a JSON object');
  }
  const error = (json as { error?: unknown }).error;
  if (typeof error !== 'number' || !Number.isInteger(error) || error < 0 || error > 9) {
    throw new InvalidAnswerError('"error" must be a single digit');
  }
  const parsed = error === 0 ? foundSchema.safeParse(json) : notFoundSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.join('.') || '(answer)';
    throw new InvalidAnswerError(`${path}: ${issue?.message ?? 'invalid'}`);
  }
  const v = parsed.data;
  return 'data' in v ? { found: true, ...v.data } : { found: false, error: v.error, message: v.message };
}

/** Whether `address` is allowed by a list of addresses / CIDR ranges / `any` (absent list: anywhere). */
export function sourceAllowed(allowed: readonly string[] | undefined, address: string): boolean {
  if (!allowed || allowed.length === 0) return true;
  return allowed.some((range) => range === 'any' || inRange(range, address));
}

function inRange(range: string, address: string): boolean {
  const [base = '', bitsText] = range.split('/');
  const a = toBytes(normalize(address));
  const b = toBytes(normalize(base));
  if (!a || !b || a.length !== b.length) return false;
  const bits = bitsText === undefined ? a.length * 8 : Number(bitsText);
  for (let i = 0; i < a.length; i++) {
    const take = Math.max(0, Math.min(8, bits - i * 8));
    if (take === 0) break;
    const mask = (0xff << (8 - take)) & 0xff;
    if (((a[i] ?? 0) & mask) !== ((b[i] ?? 0) & mask)) return false;
  }
  return true;
}

/** IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a dual-stack socket reports) → IPv4. */
export function normalize(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m?.[1] ?? address;
}

function toBytes(address: string): number[] | undefined {
  const family = isIP(address);
  if (family === 4) return address.split('.').map(Number);
  if (family !== 6) return undefined;
  let [head = '', tail] = address.split('::') as [string, string | undefined];
  let v4: number[] = [];
  const last = (tail ?? head).split(':').pop() ?? '';
  if (last.includes('.')) {
    v4 = last.split('.').map(Number);
    if (tail !== undefined) tail = tail.slice(0, tail.length - last.length).replace(/:$/, '');
    else head = head.slice(0, head.length - last.length).replace(/:$/, '');
  }
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = 8 - v4.length / 2;
  const zeros = tail === undefined ? 0 : groups - h.length - t.length;
  const words = [...h, ...Array<string>(Math.max(0, zeros)).fill('0'), ...t].map((w) => parseInt(w || '0', 16));
  const bytes: number[] = [];
  for (const w of words) bytes.push((w >> 8) & 0xff, w & 0xff);
  return [...bytes, ...v4];
}
