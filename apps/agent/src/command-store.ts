import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { agentResultStatusSchema, formatZodError, type CommandDocument } from '@herald/contracts';
import { commandDocumentSchema } from './server-frame.schema';

/** File name of the agent's store inside its data directory. */
export const STORE_FILE = 'agent.db';

/** Who the agent is: written by `enroll`, read by `run`. The key is a secret: never log it. */
export const agentIdentitySchema = z.object({
  uuid: z.string().min(1),
  key: z.string().min(1),
  name: z.string().min(1),
  managerUrl: z.string().min(1),
  commsUrl: z.string().min(1),
  groups: z.array(z.string()),
  enrolledAt: z.string(),
  /** CA bundle given at enrollment; `run` uses it unless told otherwise. */
  caFile: z.string().optional(),
});
export type AgentIdentity = z.infer<typeof agentIdentitySchema>;

export const storedResultSchema = z.object({
  status: agentResultStatusSchema,
  code: z.number().int(),
  message: z.string(),
  data: z.unknown().optional(),
});
/** The outcome of a command as the agent reports it in a `result` frame. */
export type StoredResult = z.infer<typeof storedResultSchema>;

/**
 * - `received`: stored (and acknowledged), waiting for its turn;
 * - `running`: its executor was started (committed before it starts);
 * - `done`: executed, result stored, waiting for the server's `result-ack`;
 * - `void`: cancelled before it started (or a seq the server declared void): skipped in order.
 */
export type CommandState = 'received' | 'running' | 'done' | 'void';

export interface StoredCommand {
  seq: number;
  id: string;
  /** Absent for a seq voided before its command ever reached the agent. */
  document?: CommandDocument;
  state: CommandState;
  result?: StoredResult;
  resultAcked: boolean;
  receivedAt: string;
  updatedAt: string;
}

export type ReceiveOutcome =
  /** New: stored durably; acknowledge it. */
  | { kind: 'stored'; command: StoredCommand }
  /** Already stored and not yet executed: acknowledge it again, do not store it twice. */
  | { kind: 'duplicate'; command: StoredCommand }
  /** Already executed and its result not yet confirmed: send the result again. */
  | { kind: 'executed'; command: StoredCommand & { result: StoredResult } }
  /** At or below lastExecutedSeq, nothing to report again (or a seq the agent voided): ignore. */
  | { kind: 'ignored'; reason: string };

export type CancelOutcome = { kind: 'voided'; seq: number } | { kind: 'ignored'; reason: string };

interface CommandRow {
  seq: number;
  id: string;
  document: string | null;
  state: string;
  result: string | null;
  result_acked: number;
  received_at: string;
  updated_at: string;
}

const SCHEMA_VERSION = 1;

export interface CommandStoreOptions {
  /** Open without writing (e.g. `status` while the agent runs). The store must exist. */
  readonly?: boolean;
}

/**
 * The agent's durable state in one SQLite file (WAL, synchronous FULL): identity,
 * `lastExecutedSeq` and the commands not yet confirmed by the server. Every method that
 * returns has committed; the agent acknowledges or reports only after that.
 */
export class CommandStore {
  readonly file: string;
  private readonly db: Database.Database;

  constructor(dataDir: string, options: CommandStoreOptions = {}) {
    this.file = join(dataDir, STORE_FILE);
    if (options.readonly) {
      if (!existsSync(this.file)) throw new Error(`no agent store at ${this.file}`);
      this.db = new Database(this.file, { readonly: true, fileMustExist: true });
      return;
    }
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // Create the file with owner-only permissions before SQLite opens it: it holds the key.
    // SQLite gives its -wal and -shm files the permissions of the database file.
    closeSync(openSync(this.file, 'a', 0o600));
    chmodSync(this.file, 0o600);
    this.db = new Database(this.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
  }

  static exists(dataDir: string): boolean {
    return existsSync(join(dataDir, STORE_FILE));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true });
    if (typeof version === 'number' && version > SCHEMA_VERSION) {
      throw new Error(`agent store ${this.file} has schema ${version}, newer than this agent (${SCHEMA_VERSION})`);
    }
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS commands (
        seq          INTEGER PRIMARY KEY,
        id           TEXT NOT NULL,
        document     TEXT,
        state        TEXT NOT NULL CHECK (state IN ('received', 'running', 'done', 'void')),
        result       TEXT,
        result_acked INTEGER NOT NULL DEFAULT 0,
        received_at  TEXT NOT NULL,
        updated_at   TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS commands_id ON commands (id);
    `);
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }

  /* ---------------- identity ---------------- */

  getIdentity(): AgentIdentity | undefined {
    const raw = this.getMeta('identity');
    if (raw === undefined) return undefined;
    const parsed = agentIdentitySchema.safeParse(JSON.parse(raw));
    if (!parsed.success) throw new Error(`corrupt identity in ${this.file}: ${formatZodError(parsed.error)}`);
    return parsed.data;
  }

  /**
   * Save a (new) identity. A different uuid starts a new command stream: the commands and
   * `lastExecutedSeq` of the previous identity are dropped in the same transaction.
   */
  saveIdentity(identity: AgentIdentity): void {
    const valid = agentIdentitySchema.parse(identity);
    this.db.transaction(() => {
      const previous = this.getIdentity();
      if (previous && previous.uuid !== valid.uuid) {
        this.db.prepare('DELETE FROM commands').run();
        this.setMeta('lastExecutedSeq', '0');
      }
      this.setMeta('identity', JSON.stringify(valid));
    })();
  }

  /** Replace the agent's groups (`set-group`). Call inside `finish` to commit with the result. */
  setGroups(groups: readonly string[]): void {
    const identity = this.getIdentity();
    if (!identity) throw new Error('agent is not enrolled');
    this.setMeta('identity', JSON.stringify({ ...identity, groups: [...groups] }));
  }

  /* ---------------- sequence ---------------- */

  /** Highest seq processed in order (executed or voided); 0 before the first. */
  lastExecutedSeq(): number {
    const raw = this.getMeta('lastExecutedSeq');
    return raw === undefined ? 0 : Number(raw);
  }

  /** The highest seq the agent knows of: stored or already processed. */
  highestKnownSeq(): number {
    const row = this.db.prepare('SELECT MAX(seq) AS max FROM commands').get() as { max: number | null };
    return Math.max(row.max ?? 0, this.lastExecutedSeq());
  }

  /** The first seq above lastExecutedSeq that is missing while a later one is stored (a gap). */
  firstMissingSeq(): number | undefined {
    const last = this.lastExecutedSeq();
    const seqs = (
      this.db.prepare('SELECT seq FROM commands WHERE seq > ? ORDER BY seq').all(last) as Array<{ seq: number }>
    ).map((r) => r.seq);
    let expected = last + 1;
    for (const seq of seqs) {
      if (seq !== expected) return expected;
      expected++;
    }
    return undefined;
  }

  /* ---------------- commands ---------------- */

  /**
   * Take a delivered command. Stores it (committed before returning) only when it is new; the
   * outcome tells the caller whether to acknowledge, re-send the result, or ignore it.
   */
  receive(document: CommandDocument): ReceiveOutcome {
    const doc = commandDocumentSchema.parse(document);
    return this.db.transaction((): ReceiveOutcome => {
      const existing = this.get(doc.seq);
      if (doc.seq <= this.lastExecutedSeq()) {
        if (existing && existing.id === doc.document_id && existing.result && !existing.resultAcked) {
          return { kind: 'executed', command: { ...existing, result: existing.result } };
        }
        return { kind: 'ignored', reason: `seq ${doc.seq} was already processed` };
      }
      if (existing) {
        if (existing.id !== doc.document_id) {
          return {
            kind: 'ignored',
            reason: `seq ${doc.seq} is already taken by command ${existing.id}, not ${doc.document_id}`,
          };
        }
        if (existing.state === 'void') return { kind: 'ignored', reason: `seq ${doc.seq} was cancelled` };
        return { kind: 'duplicate', command: existing };
      }
      const byId = this.getById(doc.document_id);
      if (byId) {
        return { kind: 'ignored', reason: `command ${doc.document_id} is already stored as seq ${byId.seq}` };
      }
      const now = new Date().toISOString();
      this.db
        .prepare(
          `INSERT INTO commands (seq, id, document, state, result, result_acked, received_at, updated_at)
           VALUES (?, ?, ?, 'received', NULL, 0, ?, ?)`,
        )
        .run(doc.seq, doc.document_id, JSON.stringify(doc), now, now);
      return { kind: 'stored', command: this.mustGet(doc.seq) };
    })();
  }

  get(seq: number): StoredCommand | undefined {
    const row = this.db.prepare('SELECT * FROM commands WHERE seq = ?').get(seq) as CommandRow | undefined;
    return row && toStored(row);
  }

  getById(id: string): StoredCommand | undefined {
    const row = this.db.prepare('SELECT * FROM commands WHERE id = ? ORDER BY seq LIMIT 1').get(id) as
      | CommandRow
      | undefined;
    return row && toStored(row);
  }

  /** Every stored command, in seq order. */
  list(): StoredCommand[] {
    return (this.db.prepare('SELECT * FROM commands ORDER BY seq').all() as CommandRow[]).map(toStored);
  }

  /** The command whose turn it is (seq = lastExecutedSeq + 1), if it is stored. */
  next(): StoredCommand | undefined {
    return this.get(this.lastExecutedSeq() + 1);
  }

  /** Commands whose executor was started and never finished (the agent stopped meanwhile). */
  running(): StoredCommand[] {
    return (this.db.prepare("SELECT * FROM commands WHERE state = 'running' ORDER BY seq").all() as CommandRow[]).map(
      toStored,
    );
  }

  /** Mark the next command running; committed before the executor starts, so it never runs twice. */
  markRunning(seq: number): void {
    this.db.transaction(() => {
      const command = this.expectNext(seq, 'run');
      if (command.state !== 'received') throw new Error(`command #${seq} is ${command.state}, cannot run it`);
      this.db
        .prepare("UPDATE commands SET state = 'running', updated_at = ? WHERE seq = ?")
        .run(new Date().toISOString(), seq);
    })();
  }

  /**
   * Store the result of the next command and advance lastExecutedSeq, in ONE transaction,
   * together with the command's local effect (`effect`), so a crash leaves either nothing or
   * all of it.
   */
  finish(seq: number, result: StoredResult, effect?: (store: CommandStore) => void): void {
    const valid = storedResultSchema.parse(result);
    this.db.transaction(() => {
      const command = this.expectNext(seq, 'finish');
      if (command.state !== 'running' && command.state !== 'received') {
        throw new Error(`command #${seq} is ${command.state}, cannot finish it`);
      }
      effect?.(this);
      this.db
        .prepare("UPDATE commands SET state = 'done', result = ?, result_acked = 0, updated_at = ? WHERE seq = ?")
        .run(JSON.stringify(valid), new Date().toISOString(), seq);
      this.setMeta('lastExecutedSeq', String(seq));
    })();
  }

  /** Pass over the next command, which is void: advance lastExecutedSeq, forget the row. */
  skipVoid(seq: number): void {
    this.db.transaction(() => {
      const command = this.expectNext(seq, 'skip');
      if (command.state !== 'void') throw new Error(`command #${seq} is ${command.state}, not void`);
      this.db.prepare('DELETE FROM commands WHERE seq = ?').run(seq);
      this.setMeta('lastExecutedSeq', String(seq));
    })();
  }

  /**
   * The server cancelled a command (`cancel {commandId, seq?}`). A stored command that has not
   * started becomes void; an unknown seq above lastExecutedSeq is recorded as void so the
   * sequence can advance past it; anything started or processed is left alone.
   */
  cancel(commandId: string, seq?: number): CancelOutcome {
    return this.db.transaction((): CancelOutcome => {
      const command = this.getById(commandId) ?? (seq === undefined ? undefined : this.get(seq));
      if (command) {
        if (command.id !== commandId) {
          return { kind: 'ignored', reason: `seq ${command.seq} holds command ${command.id}, not ${commandId}` };
        }
        if (command.state === 'void') return { kind: 'ignored', reason: `command #${command.seq} is already void` };
        if (command.state !== 'received') {
          return {
            kind: 'ignored',
            reason: `command #${command.seq} already ${command.state === 'done' ? 'ran' : 'started'}`,
          };
        }
        this.db
          .prepare("UPDATE commands SET state = 'void', updated_at = ? WHERE seq = ?")
          .run(new Date().toISOString(), command.seq);
        return { kind: 'voided', seq: command.seq };
      }
      if (seq === undefined) return { kind: 'ignored', reason: `unknown command ${commandId}` };
      if (seq <= this.lastExecutedSeq()) return { kind: 'ignored', reason: `seq ${seq} was already processed` };
      const now = new Date().toISOString();
      this.db
        .prepare(
          `INSERT INTO commands (seq, id, document, state, result, result_acked, received_at, updated_at)
           VALUES (?, ?, NULL, 'void', NULL, 0, ?, ?)`,
        )
        .run(seq, commandId, now, now);
      return { kind: 'voided', seq };
    })();
  }

  /** The server has the result durably (`result-ack`): the command can be forgotten. */
  ackResult(commandId: string): StoredCommand | undefined {
    return this.db.transaction(() => {
      const command = this.getById(commandId);
      if (!command || command.state !== 'done') return undefined;
      this.db.prepare('DELETE FROM commands WHERE seq = ?').run(command.seq);
      return { ...command, resultAcked: true };
    })();
  }

  /** Executed commands whose result the server has not confirmed yet, in seq order. */
  unackedResults(): Array<StoredCommand & { result: StoredResult }> {
    return (
      this.db
        .prepare("SELECT * FROM commands WHERE state = 'done' AND result_acked = 0 ORDER BY seq")
        .all() as CommandRow[]
    )
      .map(toStored)
      .flatMap((c) => (c.result ? [{ ...c, result: c.result }] : []));
  }

  /* ---------------- helpers ---------------- */

  private expectNext(seq: number, what: string): StoredCommand {
    const expected = this.lastExecutedSeq() + 1;
    if (seq !== expected) throw new Error(`cannot ${what} command #${seq}: the next in order is #${expected}`);
    return this.mustGet(seq);
  }

  private mustGet(seq: number): StoredCommand {
    const command = this.get(seq);
    if (!command) throw new Error(`command #${seq} is not stored`);
    return command;
  }

  private getMeta(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  private setMeta(key: string, value: string): void {
    this.db
      .prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
      .run(key, value);
  }
}

function toStored(row: CommandRow): StoredCommand {
  const state = row.state as CommandState;
  const document = row.document === null ? undefined : commandDocumentSchema.parse(JSON.parse(row.document));
  const result = row.result === null ? undefined : storedResultSchema.parse(JSON.parse(row.result));
  return {
    seq: row.seq,
    id: row.id,
    ...(document ? { document } : {}),
    state,
    ...(result ? { result } : {}),
    resultAcked: row.result_acked !== 0,
    receivedAt: row.received_at,
    updatedAt: row.updated_at,
  };
}
