import { accessSync, constants, statSync } from 'node:fs';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { KeyRequestConfig } from '@herald/config';
import type { Logger } from 'pino';
import { KeyRequestBusyError, KeyRequestConfigError, KeyRequestRateLimitedError } from './key-request.errors';
import { InvalidAnswerError, lookupValue, normalize, parseAnswer, type LookupKind } from './key-request.schema';
import { KeySourceError, ProgramKeySource, type SourceOutput } from './program-key-source';
import { SocketKeySource, socketUnavailable } from './socket-key-source';

/** The key request part of Herald's configuration; client addresses are resolved by the caller. */
export type KeyRequestSettings = Omit<KeyRequestConfig, 'trustedProxies'>;

/** A key the source gave for an agent. */
export interface FoundKey {
  /** The id the source answered with: the agent's UUID, or a legacy 3–8 digit id. */
  id: string;
  name: string;
  /** Address, CIDR range or `any`: where the agent may authenticate from. */
  ip: string;
  key: string;
  /** Which look-up found it. */
  by: LookupKind;
}

export type LookupOutcome = 'found' | 'not-found' | 'invalid-answer' | 'failed' | 'cached-not-found' | 'refused-value';

/** One look-up and its outcome, for the audit log (never the key). */
export interface KeyLookupAudit {
  kind: LookupKind;
  value: string;
  outcome: LookupOutcome;
  via?: 'program' | 'socket';
  ms: number;
  reason?: string;
  exitCode?: number | null;
  signal?: string | null;
  stderr?: string;
}

/**
 * Key request: fetches an unknown agent's key from the operator's key source — a program and/or
 * a Unix socket — asking `id <agent uuid>` first and then `ip <source address>`.
 *
 * Bounded under floods: at most `threads` look-ups run and `queueSize` wait (more: KeyRequestBusyError
 * → 503 + Retry-After); concurrent look-ups of one value share a call; "not found" is cached for
 * `negativeTtlSeconds`; look-ups are rate limited per source address. Every look-up is audited.
 */
export class KeyRequestService {
  private readonly program?: ProgramKeySource;
  private readonly socket?: SocketKeySource;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly inFlight = new Map<string, Promise<FoundKey | undefined>>();
  private readonly notFound = new Map<string, number>();
  private readonly limiter: RateLimiterMemory;
  /** Calls actually made to the source (tests and metrics). */
  calls = 0;

  constructor(
    private readonly settings: KeyRequestSettings,
    private readonly logger: Logger,
    private readonly audit: (record: KeyLookupAudit) => Promise<void> | void,
  ) {
    const timeoutMs = settings.timeoutSeconds * 1000;
    if (settings.exec) this.program = new ProgramKeySource(settings.exec, timeoutMs);
    if (settings.socket) this.socket = new SocketKeySource(settings.socket, Math.min(timeoutMs, 5000));
    this.limiter = new RateLimiterMemory({ points: settings.ratePerSourcePerMinute, duration: 60 });
  }

  get enabled(): boolean {
    return this.settings.enabled;
  }

  /**
   * Boot checks: the program must exist and be executable (its interpreter's script readable);
   * the socket gets its health check (connect, close). A missing socket is not fatal when a
   * program is configured: look-ups fall back to it.
   */
  async start(): Promise<void> {
    if (!this.settings.enabled) return;
    if (this.settings.exec) {
      const [file, ...rest] = this.settings.exec;
      try {
        if (!file || !statSync(file).isFile()) throw new Error('not a file');
        accessSync(file, constants.X_OK);
        const script = rest.find((a) => a.startsWith('/'));
        if (script) accessSync(script, constants.R_OK);
      } catch (e) {
        throw new KeyRequestConfigError(
          `HERALD_KEY_REQUEST_EXEC_PATH: "${this.settings.exec.join(' ')}" is not an executable program (${(e as Error).message})`,
        );
      }
    }
    if (this.socket) {
      try {
        await this.socket.healthCheck();
        this.logger.info({ socket: this.socket.path }, 'key request socket is reachable');
      } catch (e) {
        const message = `key request socket ${this.socket.path} is unavailable (${(e as Error).message})`;
        if (!this.program) this.logger.error(message + '; look-ups will fail until it is back');
        else this.logger.warn(message + '; look-ups fall back to the program');
      }
    }
  }

  /**
   * Asks the source about an unknown agent: by id (its UUID), then by the source address.
   * Undefined when neither look-up found a valid answer.
   */
  async resolve(agentUuid: string, sourceAddress: string): Promise<FoundKey | undefined> {
    const address = normalize(sourceAddress);
    try {
      await this.limiter.consume(address || 'unknown');
    } catch (e) {
      if (e instanceof RateLimiterRes)
        throw new KeyRequestRateLimitedError(Math.max(1, Math.ceil(e.msBeforeNext / 1000)));
      throw e;
    }
    const byId = await this.lookup('id', agentUuid);
    if (byId) return byId;
    return this.lookup('ip', address);
  }

  private async lookup(kind: LookupKind, raw: string): Promise<FoundKey | undefined> {
    const started = Date.now();
    const value = lookupValue(kind, raw);
    if (value === undefined) {
      await this.record({
        kind,
        value: printableExcerpt(raw),
        outcome: 'refused-value',
        ms: 0,
        reason: `not a valid ${kind}`,
      });
      return undefined;
    }
    const cacheKey = `${kind}:${value}`;
    const until = this.notFound.get(cacheKey);
    if (until !== undefined) {
      if (until > Date.now()) {
        await this.record({ kind, value, outcome: 'cached-not-found', ms: 0 });
        return undefined;
      }
      this.notFound.delete(cacheKey);
    }
    const shared = this.inFlight.get(cacheKey);
    if (shared) return shared;
    if (this.running >= this.settings.threads && this.waiting.length >= this.settings.queueSize) {
      throw new KeyRequestBusyError(Math.max(1, Math.ceil(this.settings.timeoutSeconds / 4)));
    }
    const call = this.queued(() => this.call(kind, value, started)).finally(() => this.inFlight.delete(cacheKey));
    this.inFlight.set(cacheKey, call);
    const found = await call;
    if (!found && this.settings.negativeTtlSeconds > 0) {
      this.notFound.set(cacheKey, Date.now() + this.settings.negativeTtlSeconds * 1000);
      if (this.notFound.size > 100_000) this.pruneNegativeCache();
    }
    return found;
  }

  private async call(kind: LookupKind, value: string, started: number): Promise<FoundKey | undefined> {
    let output: SourceOutput | undefined;
    try {
      this.calls++;
      output = await this.ask(kind, value);
      const answer = parseAnswer(output.output);
      const base = { kind, value, via: output.via, ms: Date.now() - started, ...programDetails(output) };
      if (!answer.found) {
        await this.record({ ...base, outcome: 'not-found', reason: `error ${answer.error}: ${answer.message}` });
        return undefined;
      }
      if (kind === 'id' && answer.id.includes('-') && answer.id !== value) {
        await this.record({ ...base, outcome: 'invalid-answer', reason: 'data.id: a different UUID than asked for' });
        return undefined;
      }
      await this.record({ ...base, outcome: 'found' });
      return { id: answer.id, name: answer.name, ip: answer.ip, key: answer.key, by: kind };
    } catch (e) {
      const details = e instanceof KeySourceError ? e.details : output;
      // Whatever went wrong — bad answer, timeout, crash, huge output — is "not found", logged and audited.
      const invalid = e instanceof InvalidAnswerError;
      await this.record({
        kind,
        value,
        outcome: invalid ? 'invalid-answer' : 'failed',
        ms: Date.now() - started,
        reason: (e as Error).message,
        ...(details ? { via: details.via, ...programDetails(details) } : {}),
      });
      return undefined;
    }
  }

  /** The socket when configured and there; the program otherwise (or when the socket is missing). */
  private async ask(kind: LookupKind, value: string): Promise<SourceOutput> {
    if (this.socket) {
      try {
        return await this.socket.lookup(kind, value);
      } catch (e) {
        if (!this.program || !socketUnavailable(e)) throw e;
        this.logger.warn(
          { socket: this.socket.path, reason: (e as Error).message },
          'key request socket unavailable; asking the program',
        );
      }
    }
    if (!this.program) throw new KeySourceError('no key source configured', { via: 'program' });
    return this.program.lookup(kind, value);
  }

  private async queued<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.settings.threads) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  private async record(entry: KeyLookupAudit): Promise<void> {
    const level = entry.outcome === 'found' || entry.outcome === 'cached-not-found' ? 'info' : 'warn';
    this.logger[level]({ keyRequest: entry }, `key request ${entry.kind} ${entry.value}: ${entry.outcome}`);
    try {
      await this.audit(entry);
    } catch (err) {
      this.logger.error({ err }, 'key request audit record could not be written');
    }
  }

  private pruneNegativeCache(): void {
    const now = Date.now();
    for (const [key, until] of this.notFound) if (until <= now) this.notFound.delete(key);
  }
}

function programDetails(o: Partial<SourceOutput>): Pick<KeyLookupAudit, 'exitCode' | 'signal' | 'stderr'> {
  return {
    ...(o.exitCode !== undefined ? { exitCode: o.exitCode } : {}),
    ...(o.signal !== undefined ? { signal: o.signal } : {}),
    ...(o.stderr ? { stderr: o.stderr.slice(0, 1024) } : {}),
  };
}

/** A refused value as it may be logged: printable ASCII, at most 64 characters. */
function printableExcerpt(raw: string): string {
  const clean = raw.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 64)}…` : clean;
}
