import { randomBytes } from 'node:crypto';

let lastMs = 0;
let lastRand: Buffer = Buffer.alloc(10);

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Within one millisecond the
 * random part is incremented so ids made by one process sort in creation order.
 */
export function uuidv7(now: number = Date.now()): string {
  let rand: Buffer;
  if (now <= lastMs) {
    rand = Buffer.from(lastRand);
    for (let i = rand.length - 1; i >= 0; i--) {
      const b = (rand[i] ?? 0) + 1;
      rand[i] = b & 0xff;
      if (b <= 0xff) break;
    }
    now = lastMs;
  } else {
    rand = randomBytes(10);
  }
  lastMs = now;
  lastRand = rand;
  const bytes = Buffer.alloc(16);
  bytes.writeUIntBE(now, 0, 6);
  rand.copy(bytes, 6);
  bytes[6] = 0x70 | ((bytes[6] ?? 0) & 0x0f);
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Any RFC 4122/9562 UUID (versions 1-8), lower or upper case. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID_PATTERN.test(value);
}
