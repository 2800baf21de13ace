type Started = { stop(): Promise<void> };

export default async function globalTeardown(): Promise<void> {
  const infra = (globalThis as { __heraldInfra?: { kafka: Started; opensearch: Started } }).__heraldInfra;
  if (!infra) return;
  await Promise.all([infra.kafka.stop(), infra.opensearch.stop()]);
}
