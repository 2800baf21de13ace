export * from './projection.port';
export * from './projection.errors';
export * from './adapters/embedded/sqlite-projection-store.adapter';
// The contract suite (./projection-store.contract.ts) is deliberately NOT exported here: it uses
// Jest's globals, and tsconfig.build.json leaves `*.contract.ts` (and jest types) out of the
// production build, so exporting it would break `npm run build`. Adapter specs import it by path.
export * from './adapters/opensearch/opensearch-projection-store.adapter';
export * from './adapters/opensearch/opensearch-projection-store.errors';
