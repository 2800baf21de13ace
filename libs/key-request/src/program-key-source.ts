import { spawn } from 'node:child_process';
import type { LookupKind } from './key-request.schema';

/** What one call of a key source produced (before the answer is validated). */
export interface SourceOutput {
  via: 'program' | 'socket';
  output: string;
  /** Program only: exit status / signal and the start of stderr. */
  exitCode?: number | null;
  signal?: string | null;
  stderr?: string;
}

export class KeySourceError extends Error {
  readonly code = 'key_source_failed';
  constructor(
    message: string,
    readonly details: Partial<SourceOutput> & { via: 'program' | 'socket' },
  ) {
    super(message);
  }
}

/** Largest stdout accepted from a key source; beyond it the call is killed and refused. */
export const MAX_OUTPUT_BYTES = 64 * 1024;
const MAX_STDERR_BYTES = 4 * 1024;

/**
 * Runs the configured program with exactly two more arguments (`id`|`ip`, value) — through
 * `spawn` with an argv array, never a shell — with a timeout (SIGKILL of its process group), a
 * cap on its output, and its exit status and stderr kept for the audit record.
 */
export class ProgramKeySource {
  constructor(
    /** Program path, optionally preceded by an interpreter and followed by fixed arguments. */
    private readonly argv: readonly string[],
    private readonly timeoutMs: number,
  ) {
    if (argv.length === 0 || !argv[0]) throw new RangeError('key source program: empty argv');
  }

  lookup(kind: LookupKind, value: string): Promise<SourceOutput> {
    const [file, ...fixed] = this.argv as [string, ...string[]];
    return new Promise((resolve, reject) => {
      const child = spawn(file, [...fixed, kind, value], {
        shell: false,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true, // its own process group, so a timeout kills whatever it started too
        env: { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C' },
      });
      const out: Buffer[] = [];
      let outBytes = 0;
      const err: Buffer[] = [];
      let errBytes = 0;
      let failure: string | undefined;
      const kill = (reason: string): void => {
        failure ??= reason;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      };
      const timer = setTimeout(() => kill(`timed out after ${this.timeoutMs} ms`), this.timeoutMs);
      child.stdout.on('data', (chunk: Buffer) => {
        outBytes += chunk.length;
        if (outBytes > MAX_OUTPUT_BYTES) kill(`output exceeds ${MAX_OUTPUT_BYTES} bytes`);
        else out.push(chunk);
      });
      child.stderr.on('data', (chunk: Buffer) => {
        if (errBytes < MAX_STDERR_BYTES) err.push(chunk.subarray(0, MAX_STDERR_BYTES - errBytes));
        errBytes += chunk.length;
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new KeySourceError(`cannot run the key source program: ${e.message}`, { via: 'program' }));
      });
      child.on('close', (exitCode, signal) => {
        clearTimeout(timer);
        const details: SourceOutput = {
          via: 'program',
          output: Buffer.concat(out).toString('utf8'),
          exitCode,
          signal,
          stderr: Buffer.concat(err).toString('utf8').trim(),
        };
        if (failure) reject(new KeySourceError(failure, details));
        else if (exitCode !== 0)
          reject(new KeySourceError(`program exited with status ${String(exitCode ?? signal)}`, details));
        else resolve(details);
      });
    });
  }
}
