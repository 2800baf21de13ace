// Prints one plain closing line per Jest run: "<tier>: N passed, N failed[, N skipped]".
class SummaryReporter {
  constructor(globalConfig, options) {
    this.tier = (options && options.tier) || 'tests';
  }
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    process.stdout.write(
      `\n${this.tier}: ${results.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`,
    );
  }
}
module.exports = SummaryReporter;
