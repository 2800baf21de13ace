module.exports = {
  ...require('./jest.shared'),
  reporters: ['default', ['<rootDir>/test/summary-reporter.js', { tier: 'unit' }]],
  displayName: 'unit',
  testMatch: ['<rootDir>/{apps,libs}/**/*.spec.ts'],
};
