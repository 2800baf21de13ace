import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { AgentDirectory, AgentRecord } from '@herald/agents';
import type { Logger } from 'pino';
import { normalize } from './key-request.schema';
import type { KeyRequestService } from './key-request.service';

/** The agent presented a key that differs from the one the key source holds: nothing is registered. */
export class KeyRequestKeyMismatchError extends Error {
  readonly code = 'key_request_key_mismatch';
  constructor() {
    super('Invalid key');
  }
}

/**
 * The address an agent connects from: the socket's peer, or — only when that peer is a trusted
 * proxy — the last address of `X-Forwarded-For` that the proxy added.
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | undefined,
  trusted: readonly string[],
): string {
  const direct = normalize(peer ?? '');
  if (!forwardedFor || !trusted.includes(direct)) return direct;
  const hops = forwardedFor
    .split(',')
    .map((h) => normalize(h.trim()))
    .filter((h) => isIP(h) !== 0);
  return hops[hops.length - 1] ?? direct;
}

/** Constant-time comparison of two secrets of any length (compares their SHA-256). */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/**
 * Enrolls an agent Herald does not know from the key source: when the source knows it (by UUID,
 * then by address) and the key the agent presented equals the source's, the agent is registered
 * (`AgentRegistered` with source `key-request`, the key only as a hash, the legacy id and the
 * allowed source range) and the caller issues its token.
 */
export class KeyRequestEnrollment {
  constructor(
    private readonly keyRequest: KeyRequestService,
    private readonly directory: AgentDirectory,
    private readonly hashKey: (key: string) => Promise<string>,
    private readonly logger: Logger,
  ) {}

  get enabled(): boolean {
    return this.keyRequest.enabled;
  }

  /**
   * The registered agent; undefined when the source does not know it. Throws
   * KeyRequestKeyMismatchError when the keys differ, and the key request's busy / rate-limited
   * errors when it cannot ask now.
   */
  async enroll(uuid: string, presentedKey: string, sourceAddress: string): Promise<AgentRecord | undefined> {
    const found = await this.keyRequest.resolve(uuid, sourceAddress);
    if (!found) return undefined;
    if (!sameSecret(presentedKey, found.key)) {
      this.logger.warn(
        { agent: uuid, by: found.by, source: sourceAddress },
        'key request: presented key differs; not registered',
      );
      throw new KeyRequestKeyMismatchError();
    }
    const registered = await this.directory.register({
      uuid,
      name: found.name,
      keyHash: await this.hashKey(presentedKey),
      type: 'Endpoint',
      version: 'unknown',
      groups: ['default'],
      registeredAt: new Date().toISOString(),
      registeredBy: 'key-request',
      source: 'key-request',
      ...(/^[0-9]{3,8}$/.test(found.id) ? { legacyId: found.id } : {}),
      ...(found.ip === 'any' ? {} : { allowedSources: [found.ip] }),
    });
    // A concurrent authentication of the same agent registered it first: use that record.
    if (!registered) this.logger.info({ agent: uuid }, 'key request: agent registered concurrently');
    const agent = this.directory.get(uuid);
    if (agent) this.logger.info({ agent: uuid, name: found.name, by: found.by }, 'agent enrolled by key request');
    return agent;
  }
}
