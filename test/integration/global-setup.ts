import { useKafka, useOpenSearch } from '../../infra/provision';

type Started = { stop(): Promise<void> };

/**
 * Integration tier: real Kafka and real OpenSearch. Uses KAFKA_BROKERS / OPENSEARCH_URL when
 * set; otherwise starts single-node servers from the cached Maven Central jars (infra/) and
 * exports their addresses to the test workers through the environment.
 */
export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  process.stderr.write(
    '\n[integration] preparing Kafka and OpenSearch (set KAFKA_BROKERS / OPENSEARCH_URL to use your own)\n',
  );
  const [kafka, opensearch] = await Promise.all([useKafka(), useOpenSearch()]);
  process.env['KAFKA_BROKERS'] = kafka.brokers;
  process.env['OPENSEARCH_URL'] = opensearch.url;
  (globalThis as { __heraldInfra?: { kafka: Started; opensearch: Started } }).__heraldInfra = { kafka, opensearch };
  process.stderr.write(
    `[integration] Kafka ${kafka.brokers}, OpenSearch ${opensearch.url} ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
}
