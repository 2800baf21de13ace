export * from './projection.port';
