module.exports = {
  ...require('./jest.shared'),
  reporters: ['default', ['<rootDir>/test/summary-reporter.js', { tier: 'e2e' }]],
  displayName: 'e2e',
  testMatch: ['<rootDir>/test/e2e/**/*.e2e-spec.ts'],
  testTimeout: 120000,
};
