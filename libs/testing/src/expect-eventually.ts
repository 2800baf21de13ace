/**
 * Waits for an asynchronous outcome: retries `check` until it stops throwing (or returns a
 * value other than false), then returns its value. Never a fixed sleep.
 */
export async function expectEventually<T>(
  check: () => T | Promise<T>,
  {
    timeoutMs = 15000,
    intervalMs = 50,
    what = 'condition',
  }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<Exclude<T, false>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== false) return value as Exclude<T, false>;
      lastError = new Error(`${what} is still false`);
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const reason = lastError instanceof Error ? lastError.message : String(lastError);
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}: ${reason}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
