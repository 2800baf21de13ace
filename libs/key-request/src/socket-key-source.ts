import { connect } from 'node:net';
import type { LookupKind } from './key-request.schema';
import { KeySourceError, MAX_OUTPUT_BYTES, type SourceOutput } from './program-key-source';

/**
 * A key source listening on a Unix stream socket: Herald connects, sends `id:<value>` or
 * `ip:<value>` (no newline) and half-closes; the source answers one JSON object and closes (an
 * answer that is complete JSON is accepted even if the source keeps the connection open).
 */
export class SocketKeySource {
  constructor(
    readonly path: string,
    private readonly timeoutMs: number,
  ) {}

  /** The start-up health check: connect, then close at once (the source must accept an empty exchange). */
  healthCheck(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no connection within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.end();
        resolve();
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  lookup(kind: LookupKind, value: string): Promise<SourceOutput> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.path);
      const chunks: Buffer[] = [];
      let bytes = 0;
      let settled = false;
      const finish = (error?: string, connectError = false): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        const output = Buffer.concat(chunks).toString('utf8');
        if (error) {
          const e = new KeySourceError(error, { via: 'socket', output });
          if (connectError) Object.assign(e, { unavailable: true });
          reject(e);
        } else resolve({ via: 'socket', output });
      };
      const timer = setTimeout(() => finish(`no answer within ${this.timeoutMs} ms`), this.timeoutMs);
      socket.once('connect', () => socket.end(`${kind}:${value}`));
      socket.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > MAX_OUTPUT_BYTES) return finish(`answer exceeds ${MAX_OUTPUT_BYTES} bytes`);
        chunks.push(chunk);
        if (isCompleteJson(Buffer.concat(chunks).toString('utf8'))) finish();
      });
      socket.once('end', () => finish());
      socket.once('error', (e: NodeJS.ErrnoException) =>
        finish(
          `socket ${this.path}: ${e.code ?? e.message}`,
          ['ENOENT', 'ECONNREFUSED', 'EACCES'].includes(e.code ?? ''),
        ),
      );
    });
  }
}

/** Whether a connection error means the socket is not there (fall back to the program). */
export function socketUnavailable(e: unknown): boolean {
  return e instanceof KeySourceError && (e as KeySourceError & { unavailable?: boolean }).unavailable === true;
}

function isCompleteJson(text: string): boolean {
  const t = text.trim();
  if (!t.startsWith('{') || !t.endsWith('}')) return false;
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
}
