/**
 * Layering rules (npm run depcheck; part of npm test). Dependencies point inward:
 * apps -> libs, adapters -> ports, domain -> contracts only. Libraries are imported by their
 * alias (@herald/x -> libs/x/src/index.ts), never by deep or relative cross-library paths.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'libs-not-to-apps',
      comment: 'Libraries never depend on applications.',
      severity: 'error',
      from: { path: '^libs/' },
      to: { path: '^apps/' },
    },
    {
      name: 'contracts-are-leaf',
      comment: 'Contracts (schemas and types) import nothing of ours and no framework.',
      severity: 'error',
      from: { path: '^libs/contracts/' },
      to: {
        path: [
          '^libs/(?!contracts/)',
          '^apps/',
          'node_modules/@nestjs/',
          'node_modules/(kafkajs|better-sqlite3|@opensearch-project)/',
        ],
      },
    },
    {
      name: 'domain-only-contracts',
      comment: 'The lifecycle is pure: it imports only @herald/contracts.',
      severity: 'error',
      from: { path: '^libs/domain/', pathNot: '\\.spec\\.ts$' },
      to: { path: ['^libs/(?!domain/|contracts/)', '^apps/', 'node_modules/(?!zod/)'], pathNot: '^libs/domain/' },
    },
    {
      name: 'infrastructure-clients-only-in-adapters',
      comment: "kafkajs, the OpenSearch client and SQLite are used only by adapters (and the agent's local store).",
      severity: 'error',
      from: { pathNot: ['^libs/[^/]+/src/adapters/', '^apps/agent/', '^infra/', '^bench/'] },
      to: { path: 'node_modules/(kafkajs|better-sqlite3|@opensearch-project/opensearch)/' },
    },
    {
      name: 'no-deep-imports-across-libs',
      comment: 'Import another library only through its index (the @herald/<name> alias).',
      severity: 'error',
      from: { path: '^(libs|apps)/([^/]+)/' },
      to: { path: '^libs/([^/]+)/src/(?!index\\.ts$)', pathNot: '^$1/$2/' },
    },
    {
      name: 'apps-independent',
      comment: 'Apps do not import each other, except the all-in-one composition root (apps/herald).',
      severity: 'error',
      from: { path: '^apps/(?!herald/)([^/]+)/' },
      to: { path: '^apps/', pathNot: '^apps/$1/' },
    },
    {
      name: 'herald-uses-app-indexes',
      comment: 'The composition root imports apps through their index only.',
      severity: 'error',
      from: { path: '^apps/herald/' },
      to: { path: '^apps/(?!herald/)[^/]+/src/(?!index\\.ts$)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^dist/|\\.d\\.ts$)' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
