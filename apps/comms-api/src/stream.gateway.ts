import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  agentFrameSchema,
  CloseCodes,
  envelope,
  formatZodError,
  isTerminal,
  MAX_FRAME_BYTES,
  toCommandDocument,
  Topics,
  type AgentFrame,
  type Command,
  type CommandEvent,
  type CommandView,
  type ServerFrame,
} from '@herald/contracts';
import type { AgentDirectory } from '@herald/agents';
import type { TokenService } from '@herald/auth';
import type { EventLog } from '@herald/event-log';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { CommandBacklog } from './command-backlog';

export const STREAM_PATH = '/api/v1/stream';
const PING_INTERVAL_MS = 30_000;
const TOKEN_WARNING_SECONDS = 60;

type SessionState = 'awaiting-hello' | 'replaying' | 'live';

/** One agent's WebSocket session. Delivery state lives here; the truth lives in the log. */
class AgentSession {
  state: SessionState = 'awaiting-hello';
  /** Highest seq this session has sent a `command` or `cancel` for (replay and live merge on it). */
  sentUpTo = 0;
  buffered: CommandEvent[] = [];
  alive = true;
  timers: NodeJS.Timeout[] = [];
  constructor(
    readonly agentUuid: string,
    readonly ws: WebSocket,
    readonly tokenExp: number,
  ) {}
}

/**
 * `GET /api/v1/stream` (upgraded): authenticated before the upgrade, then hello → replay →
 * live push, with acks and results appended to `agent-feedback`.
 */
export class StreamGateway {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  private readonly sessions = new Map<string, AgentSession>();
  private pingTimer?: NodeJS.Timeout;

  constructor(
    private readonly log: EventLog,
    private readonly tokens: TokenService,
    private readonly directory: AgentDirectory,
    private readonly backlog: CommandBacklog,
    private readonly logger: Logger,
  ) {}

  attach(server: HttpServer): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.pingTimer = setInterval(() => this.pingAll(), PING_INTERVAL_MS);
    this.pingTimer.unref();
  }

  get connectedAgents(): number {
    return this.sessions.size;
  }

  async close(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const session of this.sessions.values()) this.end(session, CloseCodes.goingAway, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  /** Live events from the `commands` tail. */
  onCommandEvent(agentUuid: string, event: CommandEvent): void {
    const session = this.sessions.get(agentUuid);
    if (!session) return;
    if (session.state !== 'live') {
      session.buffered.push(event);
      return;
    }
    this.push(session, event);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== STREAM_PATH) return rejectUpgrade(socket, 404, 'Not found');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!match?.[1]) return rejectUpgrade(socket, 401, 'Missing bearer token');
    let claims: { uuid: string; exp: number };
    try {
      claims = this.tokens.verifyAgent(match[1]);
    } catch (e) {
      return rejectUpgrade(socket, 403, e instanceof Error ? e.message : 'Invalid token');
    }
    const agent = this.directory.get(claims.uuid);
    if (!agent) return rejectUpgrade(socket, 403, 'Agent does not exist');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.open(agent.uuid, ws, claims.exp));
  }

  private open(agentUuid: string, ws: WebSocket, tokenExp: number): void {
    const previous = this.sessions.get(agentUuid);
    if (previous) this.end(previous, CloseCodes.policy, 'replaced by a newer connection');
    const session = new AgentSession(agentUuid, ws, tokenExp);
    this.sessions.set(agentUuid, session);
    this.logger.info({ agent: agentUuid }, 'agent connected');
    const msToExp = tokenExp * 1000 - Date.now();
    session.timers.push(
      setTimeout(
        () => this.send(session, { type: 'token-expiring', inSeconds: TOKEN_WARNING_SECONDS }),
        Math.max(0, msToExp - TOKEN_WARNING_SECONDS * 1000),
      ),
      setTimeout(() => this.end(session, CloseCodes.policy, 'token expired'), Math.max(0, msToExp)),
    );
    ws.on('pong', () => (session.alive = true));
    ws.on('message', (data: RawData, isBinary: boolean) => {
      this.onFrame(session, data, isBinary).catch((err: unknown) => {
        this.logger.error({ err, agent: agentUuid }, 'frame handling failed');
        this.fail(session, CloseCodes.serverError, 500, 'internal error; reconnect');
      });
    });
    ws.on('close', () => {
      for (const t of session.timers) clearTimeout(t);
      if (this.sessions.get(agentUuid) === session) this.sessions.delete(agentUuid);
      this.logger.info({ agent: agentUuid }, 'agent disconnected');
    });
    ws.on('error', (err) => this.logger.warn({ err, agent: agentUuid }, 'agent socket error'));
  }

  private async onFrame(session: AgentSession, data: RawData, isBinary: boolean): Promise<void> {
    if (isBinary) return this.fail(session, CloseCodes.badData, 400, 'binary frames are not accepted; send JSON text');
    let json: unknown;
    try {
      json = JSON.parse(rawToString(data));
    } catch {
      return this.fail(session, CloseCodes.badData, 400, 'frame is not valid JSON');
    }
    const parsed = agentFrameSchema.safeParse(json);
    if (!parsed.success)
      return this.fail(session, CloseCodes.badData, 400, `invalid frame: ${formatZodError(parsed.error)}`);
    const frame: AgentFrame = parsed.data;
    switch (frame.type) {
      case 'hello':
        if (session.state !== 'awaiting-hello')
          return this.fail(session, CloseCodes.policy, 400, 'hello was already sent');
        return this.replay(session, frame.lastExecutedSeq + 1, frame.lastExecutedSeq);
      case 'resend':
        if (session.state === 'awaiting-hello') return this.fail(session, CloseCodes.policy, 400, 'send hello first');
        return this.replay(session, frame.fromSeq, frame.fromSeq - 1);
      case 'ack':
        await this.feedback(session, 'CommandAcknowledged', { commandId: frame.commandId, seq: frame.seq });
        return;
      case 'result':
        await this.feedback(session, 'CommandResultReported', {
          commandId: frame.commandId,
          seq: frame.seq,
          status: frame.status,
          result: {
            code: frame.code,
            message: frame.message,
            ...(frame.data !== undefined ? { data: frame.data } : {}),
          },
        });
        this.send(session, { type: 'result-ack', commandId: frame.commandId });
        return;
      default: {
        const unknownFrame: never = frame;
        return unknownFrame;
      }
    }
  }

  /** Sends the backlog from `fromSeq`, then the events buffered meanwhile, then goes live. */
  private async replay(session: AgentSession, fromSeq: number, floor: number): Promise<void> {
    session.state = 'replaying';
    const views = await this.backlog.from(session.agentUuid, fromSeq);
    for (const view of views) {
      if (isTerminal(view.status)) {
        this.send(session, { type: 'cancel', commandId: view.id, seq: view.seq });
      } else {
        await this.deliver(session, viewToCommand(view), view.status === 'pending');
      }
      session.sentUpTo = Math.max(session.sentUpTo, view.seq);
    }
    session.sentUpTo = Math.max(session.sentUpTo, floor);
    const buffered = session.buffered;
    session.buffered = [];
    session.state = 'live';
    for (const event of buffered) this.push(session, event);
  }

  private push(session: AgentSession, event: CommandEvent): void {
    if (event.type === 'CommandIssued') {
      const command = event.data.command;
      if (command.seq <= session.sentUpTo) return;
      session.sentUpTo = command.seq;
      this.deliver(session, command, true).catch((err: unknown) =>
        this.logger.error({ err, agent: session.agentUuid }, 'recording delivery failed'),
      );
    } else if (event.type === 'CommandCancelled' || event.type === 'CommandExpired') {
      this.send(session, { type: 'cancel', commandId: event.data.commandId, seq: event.data.seq });
    }
  }

  private async deliver(session: AgentSession, command: Command, recordDelivery: boolean): Promise<void> {
    const sent = await this.sendAndWait(session, { type: 'command', ...toCommandDocument(command) });
    if (sent && recordDelivery) {
      await this.feedback(session, 'CommandDelivered', { commandId: command.id, seq: command.seq, via: 'websocket' });
    }
  }

  private async feedback(session: AgentSession, type: string, data: Record<string, unknown>): Promise<void> {
    await this.log.append([
      {
        topic: Topics.agentFeedback,
        key: session.agentUuid,
        value: JSON.stringify(envelope(type, data, { agentUuid: session.agentUuid })),
      },
    ]);
  }

  private send(session: AgentSession, frame: ServerFrame): void {
    if (session.ws.readyState === WebSocket.OPEN) session.ws.send(JSON.stringify(frame));
  }

  private sendAndWait(session: AgentSession, frame: ServerFrame): Promise<boolean> {
    if (session.ws.readyState !== WebSocket.OPEN) return Promise.resolve(false);
    return new Promise((resolve) => session.ws.send(JSON.stringify(frame), (err) => resolve(!err)));
  }

  private fail(session: AgentSession, closeCode: number, code: number, message: string): void {
    this.send(session, { type: 'error', code, message });
    this.end(session, closeCode, message);
  }

  private end(session: AgentSession, code: number, reason: string): void {
    for (const t of session.timers) clearTimeout(t);
    if (this.sessions.get(session.agentUuid) === session) this.sessions.delete(session.agentUuid);
    if (session.ws.readyState === WebSocket.OPEN || session.ws.readyState === WebSocket.CONNECTING) {
      session.ws.close(code, reason.slice(0, 120));
    }
  }

  private pingAll(): void {
    for (const session of this.sessions.values()) {
      if (!session.alive) {
        session.ws.terminate();
        continue;
      }
      session.alive = false;
      session.ws.ping();
    }
  }
}

function viewToCommand(view: CommandView): Command {
  return {
    id: view.id,
    requestId: view.requestId,
    seq: view.seq,
    agentUuid: view.agent,
    action: view.action,
    source: view.source,
    user: view.user,
    issuedAt: view.timestamps.issued,
    expiresAt: view.expiresAt,
    timeout: view.timeout,
  };
}

function rawToString(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  return Buffer.from(new Uint8Array(data)).toString('utf8');
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ message, code: status });
  const reason = status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Not Found';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
