export * from './herald.errors';
export * from './logger';
export * from './http-exception.filter';
export * from './tls';
export * from './validation';
export * from './http-app';
export * from './health.controller';
