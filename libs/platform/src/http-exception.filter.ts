import { ArgumentsHost, Catch, ExceptionFilter, HttpException } from '@nestjs/common';
import type { Response } from 'express';
import type { Logger } from 'pino';
import { HeraldError } from './herald.errors';

interface BodyParserError {
  type?: string;
  status?: number;
  statusCode?: number;
  limit?: number;
}

/**
 * The one place where errors become HTTP responses: `{"message": string, "code": int}`.
 * Unknown errors are logged and answered with a generic 500 (no internals leak).
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const { status, message, code } = this.describe(exception);
    if (status >= 500) this.logger.error({ err: exception }, 'request failed');
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(status).json({ message, code });
  }

  private describe(exception: unknown): { status: number; message: string; code: number } {
    if (exception instanceof HeraldError) {
      return { status: exception.status, message: exception.message, code: exception.code };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse();
      let message = exception.message;
      if (typeof response === 'object' && response !== null && 'message' in response) {
        const m = (response as { message: unknown }).message;
        message = Array.isArray(m) ? m.join('; ') : String(m);
      }
      return { status, message, code: status };
    }
    const bp = exception as BodyParserError | null;
    if (bp && typeof bp === 'object' && typeof bp.type === 'string') {
      switch (bp.type) {
        case 'entity.parse.failed':
          return { status: 400, message: 'Malformed JSON body', code: 400 };
        case 'entity.too.large':
          return { status: 413, message: `Body exceeds the limit of ${bp.limit ?? '?'} bytes`, code: 413 };
        case 'encoding.unsupported':
        case 'charset.unsupported':
          return { status: 415, message: 'Unsupported body encoding', code: 415 };
        case 'request.aborted':
          return { status: 400, message: 'Request aborted', code: 400 };
        default: {
          const status = bp.status ?? bp.statusCode ?? 400;
          return { status, message: 'Bad request body', code: status };
        }
      }
    }
    return { status: 500, message: 'Internal server error', code: 500 };
  }
}
