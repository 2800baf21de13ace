// The end-to-end suite again, with every server on real Kafka and OpenSearch (started by the
// integration tier's global setup, or KAFKA_BROKERS / OPENSEARCH_URL when set).
const e2e = require('./jest.e2e.config');

module.exports = {
  ...e2e,
  reporters: ['default', ['<rootDir>/test/summary-reporter.js', { tier: 'e2e-distributed' }]],
  displayName: 'e2e-distributed',
  // The e2e suite, plus what only makes sense with real brokers (e.g. restarting Kafka).
  testMatch: ['<rootDir>/test/e2e/**/*.e2e-spec.ts', '<rootDir>/test/e2e-distributed/**/*.e2e-spec.ts'],
  globalSetup: '<rootDir>/test/integration/global-setup.ts',
  globalTeardown: '<rootDir>/test/integration/global-teardown.ts',
};
