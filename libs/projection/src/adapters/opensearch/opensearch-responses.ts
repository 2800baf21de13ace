/**
 * Narrowing of OpenSearch response bodies (typed `any` by the client) to what the adapter reads.
 * A body of an unexpected shape is an error naming the operation, never a silent `undefined`.
 */
import { OpenSearchRequestError } from './opensearch-projection-store.errors';
import { isPlainObject } from '../../projection-rules';

export interface Hit {
  id: string;
  version: number;
  source: Record<string, unknown>;
  sort: unknown[];
}

export interface BulkItem {
  /** The index as the action named it (an alias) or as written (a concrete index). */
  index: string;
  id: string;
  status: number;
  /** `error.type` of a failed item, e.g. `version_conflict_engine_exception`. */
  errorType?: string;
  reason?: string;
}

export interface Bucket {
  key: unknown;
  count: number;
}

function unexpected(operation: string, what: string): OpenSearchRequestError {
  return new OpenSearchRequestError(operation, undefined, `unexpected response: ${what}`);
}

/** `error.type` of an error body (`index_not_found_exception`, …). */
export function errorType(body: unknown): string | undefined {
  if (!isPlainObject(body) || !isPlainObject(body.error)) return undefined;
  return typeof body.error.type === 'string' ? body.error.type : undefined;
}

/** `type: reason` of an error body (or of a bulk item's `error`), for messages. */
export function errorReason(body: unknown): string {
  const error = isPlainObject(body) && isPlainObject(body.error) ? body.error : body;
  if (!isPlainObject(error)) return typeof body === 'string' ? body : (JSON.stringify(body) ?? 'no details');
  const type = typeof error.type === 'string' ? error.type : 'error';
  const reason = typeof error.reason === 'string' ? error.reason : JSON.stringify(error);
  // A search failure says `all shards failed`; what failed is in root_cause (or caused_by).
  const root: unknown = Array.isArray(error.root_cause) ? error.root_cause[0] : undefined;
  const cause = isPlainObject(root) && (root.type !== type || root.reason !== reason) ? root : error.caused_by;
  return `${type}: ${reason}${isPlainObject(cause) ? ` (caused by ${errorReason(cause)})` : ''}`;
}

export function searchHits(operation: string, body: unknown): Hit[] {
  const hits = isPlainObject(body) && isPlainObject(body.hits) ? body.hits.hits : undefined;
  if (!Array.isArray(hits)) throw unexpected(operation, 'no hits');
  return hits.map((hit: unknown): Hit => {
    if (!isPlainObject(hit) || typeof hit._id !== 'string' || typeof hit._version !== 'number') {
      throw unexpected(operation, 'a hit without _id or _version');
    }
    if (!isPlainObject(hit._source)) throw unexpected(operation, `hit ${hit._id} without _source`);
    return {
      id: hit._id,
      version: hit._version,
      source: hit._source,
      sort: Array.isArray(hit.sort) ? (hit.sort as unknown[]) : [],
    };
  });
}

export function countOf(operation: string, body: unknown): number {
  if (!isPlainObject(body) || typeof body.count !== 'number') throw unexpected(operation, 'no count');
  return body.count;
}

export function bulkItems(operation: string, body: unknown): BulkItem[] {
  const items = isPlainObject(body) ? body.items : undefined;
  if (!Array.isArray(items)) throw unexpected(operation, 'no bulk items');
  return items.map((item: unknown): BulkItem => {
    const result = isPlainObject(item) ? Object.values(item)[0] : undefined;
    if (!isPlainObject(result) || typeof result.status !== 'number') throw unexpected(operation, 'a bulk item');
    const error = isPlainObject(result.error) ? result.error : undefined;
    return {
      index: typeof result._index === 'string' ? result._index : '',
      id: typeof result._id === 'string' ? result._id : '',
      status: result.status,
      ...(error !== undefined
        ? { errorType: typeof error.type === 'string' ? error.type : 'error', reason: errorReason(error) }
        : {}),
    };
  });
}

/** Buckets and `after_key` of the composite aggregation `name`. */
export function compositePage(
  operation: string,
  body: unknown,
  name: string,
): { buckets: Bucket[]; afterKey?: Record<string, unknown> } {
  const aggregation = isPlainObject(body) && isPlainObject(body.aggregations) ? body.aggregations[name] : undefined;
  if (!isPlainObject(aggregation) || !Array.isArray(aggregation.buckets)) throw unexpected(operation, 'no buckets');
  const buckets = aggregation.buckets.map((bucket: unknown): Bucket => {
    if (!isPlainObject(bucket) || !isPlainObject(bucket.key) || typeof bucket.doc_count !== 'number') {
      throw unexpected(operation, 'a bucket');
    }
    return { key: Object.values(bucket.key)[0], count: bucket.doc_count };
  });
  return {
    buckets,
    ...(isPlainObject(aggregation.after_key) ? { afterKey: aggregation.after_key } : {}),
  };
}

export interface StoredVersionedSource {
  source: Record<string, unknown>;
  version: number;
  seqNo: number;
  primaryTerm: number;
}

/** A found document of a GET, or undefined when the body says `found: false`. */
export function foundDocument(operation: string, body: unknown): StoredVersionedSource | undefined {
  if (!isPlainObject(body) || body.found !== true) return undefined;
  if (
    !isPlainObject(body._source) ||
    typeof body._version !== 'number' ||
    typeof body._seq_no !== 'number' ||
    typeof body._primary_term !== 'number'
  ) {
    throw unexpected(operation, 'a document without _source, _version, _seq_no or _primary_term');
  }
  return { source: body._source, version: body._version, seqNo: body._seq_no, primaryTerm: body._primary_term };
}

/** The only index of a GET `<alias>/_mapping` answer: its concrete name and `mappings`. */
export function singleMapping(
  operation: string,
  alias: string,
  body: unknown,
): { concrete: string; mappings: Record<string, unknown> } | undefined {
  if (!isPlainObject(body)) throw unexpected(operation, 'no mappings');
  const entries = Object.entries(body);
  if (entries.length === 0) return undefined;
  if (entries.length > 1) {
    throw new OpenSearchRequestError(
      operation,
      undefined,
      `the alias ${alias} points to ${entries.length} indices (${entries.map(([name]) => name).join(', ')}); ` +
        'remove it from all but one',
    );
  }
  const [concrete, value] = entries[0] ?? [];
  if (concrete === undefined || !isPlainObject(value) || !isPlainObject(value.mappings)) {
    throw unexpected(operation, 'no mappings');
  }
  return { concrete, mappings: value.mappings };
}
