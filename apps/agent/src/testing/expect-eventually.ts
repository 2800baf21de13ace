/**
 * Retry an assertion until it passes or the time is up (then its last error is thrown).
 * For asynchronous outcomes in tests: never sleep for a fixed time.
 */
export async function expectEventually<T>(
  assertion: () => T | Promise<T>,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  const interval = options.intervalMs ?? 10;
  for (;;) {
    try {
      return await assertion();
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  }
}
