export * from './indexer.service';
