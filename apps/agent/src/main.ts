#!/usr/bin/env node
/**
 * herald-agent CLI: `enroll`, `run` (a supervisor that forks this same script as its worker with
 * `--worker`) and `status`. See `herald-agent --help`.
 */
import { runCli } from './cli';

const io = {
  out: (line: string): void => void process.stdout.write(`${line}\n`),
  err: (line: string): void => void process.stderr.write(`${line}\n`),
};

let stopRequested = false;
runCli(process.argv.slice(2), {
  env: process.env,
  io,
  entry: process.argv[1],
  worker: {
    onStopRequest(stop) {
      const once = (): void => {
        if (stopRequested) return;
        stopRequested = true;
        stop();
      };
      process.once('SIGINT', once);
      process.once('SIGTERM', once);
      // Forked by the supervisor: stop when it goes away.
      if (process.send !== undefined) process.once('disconnect', once);
    },
  },
}).then(
  (code) => process.exit(code),
  (error: unknown) => {
    io.err(`herald-agent: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
