/**
 * Prints one plain closing line after jest's own summary, e.g. `tests: 357 passed, 0 failed`,
 * so CI reads how many tests ran and failed. (Jest loads reporters by their default export.)
 */
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    process.stdout.write(
      `tests: ${results.numPassedTests} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`,
    );
  }
}
