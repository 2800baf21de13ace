// Integration tier: the port contract suites (and more) against real Kafka and OpenSearch.
module.exports = {
  ...require('./jest.shared'),
  reporters: ['default', ['<rootDir>/test/summary-reporter.js', { tier: 'integration' }]],
  displayName: 'integration',
  testMatch: ['<rootDir>/{apps,libs,test}/**/*.int-spec.ts'],
  globalSetup: '<rootDir>/test/integration/global-setup.ts',
  globalTeardown: '<rootDir>/test/integration/global-teardown.ts',
  testTimeout: 120000,
};
