import type { INestApplication, Type, DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { HttpExceptionFilter } from './http-exception.filter';
import { PinoNestLogger } from './logger';

export interface HttpAppOptions {
  tls: { cert: string; key: string };
  host: string;
  port: number;
  maxBodyBytes: number;
  logger: Logger;
  /** Extra body types parsed as text (e.g. NDJSON). */
  textTypes?: string[];
}

/**
 * A NestJS HTTPS app with Herald's edge rules: bounded JSON bodies, body-parser errors answered
 * as `{"message","code"}` (never an HTML page or a 500), one global error filter.
 */
export async function createHttpApp(
  module: Type<unknown> | DynamicModule,
  options: HttpAppOptions,
): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(module, new ExpressAdapter(), {
    httpsOptions: { cert: options.tls.cert, key: options.tls.key },
    bodyParser: false,
    logger: new PinoNestLogger(options.logger),
    abortOnError: false,
  });
  app.disable('x-powered-by');
  const filter = new HttpExceptionFilter(options.logger);
  const parsers = [
    express.json({ limit: options.maxBodyBytes, type: ['application/json', 'application/*+json'] }),
    ...(options.textTypes?.length ? [express.text({ limit: options.maxBodyBytes, type: options.textTypes })] : []),
  ];
  for (const parser of parsers) {
    app.use((req: Request, res: Response, next: NextFunction) => {
      parser(req, res, (err?: unknown) => {
        if (err) {
          filter.catch(err, {
            switchToHttp: () => ({ getResponse: () => res, getRequest: () => req }),
          } as never);
          return;
        }
        next();
      });
    });
  }
  app.useGlobalFilters(filter);
  return app;
}

export async function listen(app: INestApplication, host: string, port: number): Promise<void> {
  await app.listen(port, host);
}
