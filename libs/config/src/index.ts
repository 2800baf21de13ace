export * from './herald.config';
