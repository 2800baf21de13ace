/**
 * Waits for an asynchronous outcome without sleeps: runs `assertion` until it stops throwing,
 * every `intervalMs`, and fails with the assertion's last error once `timeoutMs` has passed.
 * (Will move to libs/testing.)
 */
export async function expectEventually<T>(
  assertion: () => T | Promise<T>,
  timeoutMs = 5_000,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await assertion();
    } catch (error: unknown) {
      if (Date.now() >= deadline) {
        if (error instanceof Error) {
          error.message = `expectEventually: still failing after ${timeoutMs} ms: ${error.message}`;
          throw error;
        }
        throw new Error(`expectEventually: still failing after ${timeoutMs} ms: ${String(error)}`);
      }
    }
    await new Promise<void>((resolve) => setTimeout(resolve, intervalMs));
  }
}
