import type { LoggerService } from '@nestjs/common';
import pino, { type Logger } from 'pino';

/** Paths redacted from every log line: credentials never reach the logs. */
export const REDACT_PATHS = [
  'password',
  'key',
  'token',
  'authorization',
  '*.password',
  '*.key',
  '*.token',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
];

export function createLogger(level: string, name = 'herald'): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}

/** Routes NestJS's own log calls into pino (structured JSON). */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  /** NestJS's own start-up chatter (routes mapped, modules initialised) is debug-level. */
  log(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string): void {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string): void {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string): void {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string): void {
    this.logger.trace({ context }, String(message));
  }
}

export type { Logger };
