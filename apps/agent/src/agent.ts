import { EventEmitter } from 'node:events';
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import {
  agentFrameSchema,
  CloseCodes,
  formatZodError,
  MAX_FRAME_BYTES,
  type AgentFrame,
  type CommandDocument,
} from '@herald/contracts';
import { CommandStore, type AgentIdentity, type StoredCommand, type StoredResult } from './command-store';
import { authenticate, checkServerUrl, EnrollmentError, type AgentToken, type TlsOptions } from './enrollment';
import { codeFor, Executors, toResult, type ActionDefinitions } from './executors';
import { serverFrameSchema, type ParsedServerFrame } from './server-frame.schema';

export interface AgentLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const silentLogger: AgentLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface AgentOptions {
  /** Where `enroll` saved the identity; holds the command store. */
  dataDir: string;
  /** Comms API base URL; defaults to the one saved at enrollment. */
  commsUrl?: string;
  tls?: TlsOptions;
  /** Extra actions (a simulator's, a test's), on top of get-config, set-group, restart. */
  actions?: ActionDefinitions;
  /** Reconnect backoff: exponential with jitter from `initialMs` (500) up to `maxMs` (30 000). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Reconnect when nothing (frame, ping, pong) came from the server for this long. 60 000. */
  deadAfterMs?: number;
  /** How often the agent pings the server. 20 000. */
  pingIntervalMs?: number;
  /** Re-authenticate this long before the token's `exp`. 60 000. */
  tokenRenewMarginMs?: number;
  /** Ask again for a missing seq when the gap is still there after this long. 30 000. */
  resendTimeoutMs?: number;
  /** Close the connection (1007) after this many malformed frames in a row. 10. */
  maxMalformedFrames?: number;
  logger?: AgentLogger;
}

/** Why `run()` ended. `restart`: the caller must start the agent again (the supervisor does). */
export type AgentRunResult = { reason: 'stopped' } | { reason: 'restart'; commandId: string; seq: number };

export interface CommandInfo {
  seq: number;
  id: string;
  action: string;
}

export type AgentEvents = {
  connected: [{ url: string }];
  disconnected: [{ code: number; reason: string }];
  'command-received': [CommandInfo];
  'command-executed': [CommandInfo & { result: StoredResult }];
  'command-voided': [{ seq: number; id: string }];
  'result-acked': [CommandInfo];
  /** A command asked the agent to restart: `run()` resolves with `{reason: 'restart'}`. */
  restart: [CommandInfo];
  'frame-rejected': [{ reason: string }];
};

/** Thrown by the constructor when the agent cannot run at all (not enrolled, bad URL, locked). */
export class AgentConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentConfigError';
  }
}

interface SessionEnd {
  /** Reconnect at once (token renewal). */
  reconnectNow: boolean;
  /** The server asked to come back later. */
  retryAfterMs?: number;
}

/**
 * The reference agent: keeps a WebSocket session to the comms API, stores every command before
 * acknowledging it, executes commands strictly in seq order exactly once, and reports results
 * until the server confirms them. Never exits the process: `run()` resolves instead.
 */
export class Agent extends EventEmitter<AgentEvents> {
  readonly store: CommandStore;
  readonly executors: Executors;
  private readonly log: AgentLogger;
  private readonly streamUrl: string;
  private readonly commsUrl: string;
  private readonly tls: TlsOptions;
  private readonly lock: DataDirLock;

  private token: (AgentToken & { renewAt: number }) | undefined;
  private socket: WebSocket | undefined;
  private running: Promise<AgentRunResult> | undefined;
  private stopping = false;
  private exit: AgentRunResult | undefined;
  private readonly stopSignal = new AbortController();
  private wake: (() => void) | undefined;
  private pumping: Promise<void> | undefined;
  private draining = false;
  private attempt = 0;
  private malformedInARow = 0;
  private resendAsked: { fromSeq: number; at: number } | undefined;
  private resendTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: AgentOptions) {
    super();
    this.log = options.logger ?? silentLogger;
    this.tls = options.tls ?? {};
    this.lock = DataDirLock.acquire(options.dataDir);
    try {
      this.store = new CommandStore(options.dataDir);
      const identity = this.store.getIdentity();
      if (!identity) throw new AgentConfigError(`not enrolled: no agent identity in ${options.dataDir}`);
      try {
        this.commsUrl = checkServerUrl(options.commsUrl ?? identity.commsUrl, 'comms URL', this.tls);
      } catch (error) {
        throw new AgentConfigError(error instanceof Error ? error.message : String(error));
      }
      this.streamUrl = streamUrlOf(this.commsUrl);
      this.executors = new Executors(options.actions);
    } catch (error) {
      this.closeStore();
      this.lock.release();
      throw error;
    }
  }

  get identity(): AgentIdentity {
    const identity = this.store.getIdentity();
    if (!identity) throw new AgentConfigError('not enrolled');
    return identity;
  }

  get lastExecutedSeq(): number {
    return this.store.lastExecutedSeq();
  }

  get connected(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /**
   * Run until `stop()` or until a command restarts the agent. Finishes what an earlier run left
   * `running`, executes stored commands, and keeps (re)connecting with backoff.
   */
  run(): Promise<AgentRunResult> {
    if (this.running) throw new Error('the agent is already running');
    if (this.stopping) throw new Error('the agent was stopped: create a new Agent to run again');
    this.running = this.loop();
    return this.running;
  }

  /** Stop: close the session, interrupt a running command (recorded as a failure), close the store. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.stopSignal.abort();
    this.wake?.();
    this.closeSocket(CloseCodes.normal, 'agent stopping');
    if (this.running) {
      await this.running;
    } else {
      this.closeStore();
      this.lock.release();
    }
  }

  /* ---------------- the connect loop ---------------- */

  private async loop(): Promise<AgentRunResult> {
    try {
      this.recoverInterrupted();
      this.pump();
      while (!this.stopping && !this.exit) {
        let end: SessionEnd = { reconnectNow: false };
        try {
          const token = await this.ensureToken();
          if (this.stopping || this.exit) break;
          end = await this.session(token.token);
        } catch (error) {
          if (!this.stopping) this.log.warn(error instanceof Error ? error.message : String(error));
        }
        if (this.stopping || this.exit) break;
        const delay = end.retryAfterMs ?? (end.reconnectNow ? 0 : this.backoffDelay());
        if (delay > 0) {
          this.log.info(`reconnecting in ${(delay / 1000).toFixed(1)} s`);
          await this.sleep(delay);
        }
      }
      await this.pumping;
      return this.exit ?? { reason: 'stopped' };
    } finally {
      clearTimeout(this.resendTimer);
      this.closeStore();
      this.lock.release();
    }
  }

  private backoffDelay(): number {
    const initial = this.options.backoff?.initialMs ?? 500;
    const max = this.options.backoff?.maxMs ?? 30_000;
    const base = Math.min(max, initial * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const jittered = base * (0.75 + Math.random() * 0.5);
    return Math.round(Math.min(max, Math.max(initial, jittered)));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    }).then(() => {
      this.wake = undefined;
    });
  }

  private async ensureToken(): Promise<AgentToken> {
    if (this.token && Date.now() < this.token.renewAt) return this.token;
    this.token = undefined;
    const identity = this.identity;
    const token = await authenticate(
      this.commsUrl,
      { uuid: identity.uuid, key: identity.key },
      this.tls,
      this.stopSignal.signal,
    );
    const now = Date.now();
    const margin = Math.min(this.options.tokenRenewMarginMs ?? 60_000, (token.expiresAt - now) / 2);
    this.token = { ...token, renewAt: token.expiresAt - margin };
    this.log.info(`authenticated as ${identity.uuid}`);
    return token;
  }

  /** One WebSocket session; resolves when it is closed, however that happens. */
  private session(token: string): Promise<SessionEnd> {
    return new Promise<SessionEnd>((resolve) => {
      const end: SessionEnd = { reconnectNow: false };
      const ws = new WebSocket(this.streamUrl, {
        headers: { Authorization: `Bearer ${token}` },
        maxPayload: MAX_FRAME_BYTES,
        handshakeTimeout: 15_000,
        ...(this.tls.ca !== undefined ? { ca: this.tls.ca } : {}),
        rejectUnauthorized: !this.tls.insecure,
      });
      this.socket = ws;
      this.malformedInARow = 0;
      this.resendAsked = undefined;
      let openedAt: number | undefined;
      let lastHeard = Date.now();
      let refused: string | undefined;
      const timers: NodeJS.Timeout[] = [];
      this.frameHandler = (frame) => this.onServerFrame(frame, end);

      ws.on('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          refused = `stream refused by ${this.streamUrl}: ${messageOf(Buffer.concat(chunks).toString('utf8'))} (HTTP ${status})`;
          if (status === 401 || status === 403) {
            this.token = undefined; // re-authenticate before the next attempt
          }
          const retryAfter = Number(res.headers['retry-after']);
          if ((status === 429 || status === 503) && Number.isFinite(retryAfter) && retryAfter >= 0) {
            end.retryAfterMs = Math.min(retryAfter, 3600) * 1000;
          }
          ws.terminate();
        });
      });
      ws.on('open', () => {
        openedAt = Date.now();
        lastHeard = openedAt;
        this.log.info(`connected to ${this.streamUrl}`);
        this.send({
          type: 'hello',
          lastExecutedSeq: this.store.lastExecutedSeq(),
          capabilities: this.executors.capabilities,
        });
        for (const command of this.store.unackedResults()) this.sendResult(command, command.result);
        this.emit('connected', { url: this.streamUrl });
        const pingEvery = this.options.pingIntervalMs ?? 20_000;
        const deadAfter = this.options.deadAfterMs ?? 60_000;
        timers.push(
          setInterval(
            () => {
              if (Date.now() - lastHeard > deadAfter) {
                this.log.warn(`nothing from the server for ${deadAfter / 1000} s: reconnecting`);
                ws.terminate();
              } else if (ws.readyState === WebSocket.OPEN) {
                ws.ping();
              }
            },
            Math.min(pingEvery, deadAfter / 2),
          ),
        );
        if (this.token) {
          timers.push(
            setTimeout(
              () => {
                this.log.info('token about to expire: re-authenticating');
                this.token = undefined;
                end.reconnectNow = true;
                ws.close(CloseCodes.normal, 'renewing token');
              },
              Math.max(0, Math.min(this.token.renewAt - Date.now(), 2 ** 31 - 1)),
            ),
          );
        }
      });
      ws.on('message', (data, isBinary) => {
        lastHeard = Date.now();
        this.onMessage(data, isBinary);
      });
      ws.on('ping', () => (lastHeard = Date.now()));
      ws.on('pong', () => (lastHeard = Date.now()));
      ws.on('error', (error) => {
        if (refused === undefined && !this.stopping && !this.exit) {
          this.log.warn(`cannot reach ${this.streamUrl}: ${describeError(error)}`);
        }
      });
      ws.on('close', (code, reason) => {
        for (const timer of timers) clearTimeout(timer);
        clearTimeout(this.resendTimer);
        if (this.socket === ws) this.socket = undefined;
        this.frameHandler = undefined;
        if (refused !== undefined) this.log.warn(refused);
        if (openedAt !== undefined) {
          // A session that held for a while resets the backoff; one that drops at once does not.
          if (Date.now() - openedAt >= 10_000) this.attempt = 0;
          const text = reason.toString('utf8');
          this.log.info(`disconnected (${code}${text ? ` ${text}` : ''})`);
          this.emit('disconnected', { code, reason: text });
        }
        resolve(end);
      });
    });
  }

  private frameHandler: ((frame: ParsedServerFrame) => void) | undefined;

  private closeSocket(code: number, reason: string): void {
    const ws = this.socket;
    if (!ws) return;
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
      return;
    }
    ws.close(code, reason);
    setTimeout(() => ws.terminate(), 2000).unref();
  }

  /* ---------------- frames ---------------- */

  private send(frame: AgentFrame): boolean {
    const ws = this.socket;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    const valid = agentFrameSchema.safeParse(frame);
    if (!valid.success) {
      this.log.error(`not sending an invalid ${frame.type} frame: ${formatZodError(valid.error)}`);
      return false;
    }
    ws.send(JSON.stringify(frame));
    return true;
  }

  private sendResult(command: StoredCommand, result: StoredResult): void {
    this.send({
      type: 'result',
      commandId: command.id,
      seq: command.seq,
      status: result.status,
      code: result.code,
      message: result.message,
      ...(result.data !== undefined ? { data: result.data } : {}),
    });
  }

  private onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (isBinary) return this.rejectFrame('binary frame');
    const text = Array.isArray(data)
      ? Buffer.concat(data).toString('utf8')
      : Buffer.isBuffer(data)
        ? data.toString('utf8')
        : Buffer.from(new Uint8Array(data)).toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return this.rejectFrame(`not JSON: ${text.slice(0, 80)}`);
    }
    const parsed = serverFrameSchema.safeParse(json);
    if (!parsed.success) return this.rejectFrame(formatZodError(parsed.error));
    this.malformedInARow = 0;
    try {
      this.frameHandler?.(parsed.data);
    } catch (error) {
      this.log.error(`could not handle a ${parsed.data.type} frame: ${describeError(error)}`);
    }
  }

  private rejectFrame(reason: string): void {
    this.log.warn(`ignored a malformed frame: ${reason}`);
    this.emit('frame-rejected', { reason });
    this.malformedInARow++;
    if (this.malformedInARow >= (this.options.maxMalformedFrames ?? 10)) {
      this.log.warn('too many malformed frames: closing the connection');
      this.closeSocket(CloseCodes.badData, 'too many malformed frames');
    }
  }

  private onServerFrame(frame: ParsedServerFrame, end: SessionEnd): void {
    switch (frame.type) {
      case 'command': {
        const { type: _type, ...document } = frame;
        this.onCommand(document);
        return;
      }
      case 'result-ack': {
        const acked = this.store.ackResult(frame.commandId);
        if (acked) this.emit('result-acked', info(acked));
        return;
      }
      case 'cancel': {
        const outcome = this.store.cancel(frame.commandId, frame.seq);
        if (outcome.kind === 'voided') {
          this.log.info(`command #${outcome.seq} cancelled: it will not run`);
          this.emit('command-voided', { seq: outcome.seq, id: frame.commandId });
          this.checkGap();
          this.pump();
        } else {
          this.log.info(`cancel of ${frame.commandId} ignored: ${outcome.reason}`);
        }
        return;
      }
      case 'token-expiring':
        this.log.info(`token expires in ${frame.inSeconds} s: re-authenticating`);
        this.token = undefined;
        end.reconnectNow = true;
        this.closeSocket(CloseCodes.normal, 'renewing token');
        return;
      case 'retry-after':
        this.log.info(`the server asks to come back in ${frame.inSeconds} s`);
        end.retryAfterMs = frame.inSeconds * 1000;
        this.closeSocket(CloseCodes.normal, 'retry later');
        return;
      case 'error':
        this.log.warn(`server error ${frame.code}: ${frame.message}`);
        return;
    }
  }

  private onCommand(document: CommandDocument): void {
    const outcome = this.store.receive(document);
    switch (outcome.kind) {
      case 'stored': {
        this.log.info(`command #${document.seq} ${document.action.name} received`);
        this.emit('command-received', info(outcome.command));
        this.send({ type: 'ack', commandId: document.document_id, seq: document.seq });
        this.checkGap();
        this.pump();
        return;
      }
      case 'duplicate':
        this.send({ type: 'ack', commandId: document.document_id, seq: document.seq });
        return;
      case 'executed':
        this.sendResult(outcome.command, outcome.command.result);
        return;
      case 'ignored':
        this.log.info(`command #${document.seq} ${document.action.name} ignored: ${outcome.reason}`);
        return;
    }
  }

  /** Ask the server for the first missing seq when a later one is stored (once, then again after a while). */
  private checkGap(): void {
    const missing = this.store.firstMissingSeq();
    if (missing === undefined) {
      this.resendAsked = undefined;
      clearTimeout(this.resendTimer);
      return;
    }
    const timeout = this.options.resendTimeoutMs ?? 30_000;
    const asked = this.resendAsked;
    if (asked && asked.fromSeq === missing && Date.now() - asked.at < timeout) return;
    if (!this.send({ type: 'resend', fromSeq: missing })) return;
    this.log.info(`command #${missing} is missing: asked the server to resend from #${missing}`);
    this.resendAsked = { fromSeq: missing, at: Date.now() };
    clearTimeout(this.resendTimer);
    this.resendTimer = setTimeout(() => this.checkGap(), timeout);
  }

  /* ---------------- execution ---------------- */

  /** Complete what a previous run left `running`: it is never executed again. */
  private recoverInterrupted(): void {
    for (const command of this.store.running()) {
      const result = this.executors.resultAfterInterruption(command.document);
      this.store.finish(command.seq, result);
      this.log.info(`command #${command.seq} ${actionOf(command)} -> ${result.status} (${result.message})`);
      this.emit('command-executed', { ...info(command), result });
    }
  }

  /** Execute stored commands in seq order, one at a time. Safe to call any time. */
  private pump(): void {
    // `draining` is reset synchronously when drain() finds nothing to do, so a command stored
    // by a frame handled in the same tick is never left behind.
    if (this.draining || this.stopping || this.exit) return;
    this.draining = true;
    const pumping: Promise<void> = this.drain()
      .catch((error: unknown) => this.log.error(`command execution stopped: ${describeError(error)}`))
      .finally(() => {
        if (this.pumping === pumping) this.pumping = undefined;
      });
    this.pumping = pumping;
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        if (this.stopping || this.exit || !this.store.isOpen) return;
        const next = this.store.next();
        if (!next) return;
        switch (next.state) {
          case 'void':
            this.store.skipVoid(next.seq);
            continue;
          case 'running':
            this.recoverInterrupted();
            continue;
          case 'done':
            throw new Error(`command #${next.seq} is done but lastExecutedSeq is ${next.seq - 1}`);
          case 'received':
            await this.execute(next);
            continue;
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async execute(command: StoredCommand): Promise<void> {
    const document = command.document;
    if (!document) throw new Error(`command #${command.seq} has no document`);
    const name = document.action.name;
    this.store.markRunning(command.seq);
    const outcome = await this.executors.execute(
      { command: document, identity: this.identity },
      this.stopSignal.signal,
    );
    if (outcome.kind === 'exit') {
      this.log.info(`command #${command.seq} ${name}: agent restarting`);
      this.exit = { reason: 'restart', commandId: command.id, seq: command.seq };
      this.emit('restart', info(command));
      this.closeSocket(CloseCodes.goingAway, 'agent restarting');
      this.wake?.();
      return;
    }
    let result = toResult(outcome.status, outcome.message, outcome.data);
    try {
      this.store.finish(command.seq, result, outcome.commit);
    } catch (error) {
      result = { status: 'failure', code: codeFor('failure'), message: `could not apply: ${describeError(error)}` };
      this.store.finish(command.seq, result);
    }
    this.log.info(
      `command #${command.seq} ${name} -> ${result.status}${result.status === 'success' ? '' : ` (${result.message})`}`,
    );
    this.emit('command-executed', { ...info(command), result });
    this.sendResult(command, result);
  }

  private closeStore(): void {
    // `store` is unset when the constructor failed before opening it.
    const store = this.store as CommandStore | undefined;
    store?.close();
  }
}

/* ---------------- helpers ---------------- */

function info(command: StoredCommand): CommandInfo {
  return { seq: command.seq, id: command.id, action: actionOf(command) };
}

function actionOf(command: StoredCommand): string {
  return command.document?.action.name ?? '(void)';
}

/** `https://host:27000` → `wss://host:27000/api/v1/stream` (keeps a path prefix). */
export function streamUrlOf(commsUrl: string): string {
  const url = new URL(commsUrl.endsWith('/') ? commsUrl : `${commsUrl}/`);
  url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
  return new URL('api/v1/stream', url).toString();
}

function messageOf(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && 'message' in parsed && typeof parsed.message === 'string') {
      return parsed.message;
    }
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 200) || 'no reason given';
}

function describeError(error: unknown): string {
  if (error instanceof EnrollmentError) return error.message;
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') {
    const message = error instanceof Error ? error.message : '';
    return message.includes(error.code) ? message : `${error.code}${message ? ` (${message})` : ''}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * One running agent per data directory: two would both execute the same commands. A lock file
 * holds the owner's pid; a lock whose process is gone (crash, restart exit) is taken over.
 */
class DataDirLock {
  private static readonly held = new Set<string>();
  private released = false;

  private constructor(private readonly file: string) {}

  static acquire(dataDir: string): DataDirLock {
    const file = join(dataDir, 'agent.lock');
    if (DataDirLock.held.has(file)) throw new AgentConfigError(`an agent is already running on ${dataDir}`);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        DataDirLock.held.add(file);
        return new DataDirLock(file);
      } catch (error) {
        if (!(error instanceof Error) || !('code' in error)) throw error;
        if (error.code === 'ENOENT') throw new AgentConfigError(`not enrolled: ${dataDir} does not exist`);
        if (error.code !== 'EEXIST') throw error;
        const pid = Number(readFileSync(file, 'utf8').trim());
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
          throw new AgentConfigError(`an agent (pid ${pid}) is already running on ${dataDir}`);
        }
        unlinkSync(file); // stale: its owner is gone
      }
    }
    throw new AgentConfigError(`cannot lock ${dataDir}`);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    DataDirLock.held.delete(this.file);
    try {
      unlinkSync(this.file);
    } catch {
      // already gone
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error instanceof Error && 'code' in error && error.code === 'EPERM';
  }
}
