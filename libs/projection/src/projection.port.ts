/**
 * The ProjectionStore port: versioned documents in named indices, queried by exact fields,
 * plus a searchable watermark. Adapters: embedded (SQLite) and OpenSearch.
 *
 * Guarantees every adapter must give (the contract suite checks each):
 * - An upsert whose version is not greater than the stored version is ignored (so replays,
 *   duplicates and out-of-order writes are no-ops).
 * - When `apply` resolves, its documents are visible to `get`/`query`/`count` ("searchable"),
 *   and the watermark it carries is stored after (never before) the documents.
 */

export const PROJECTION_STORE = Symbol('PROJECTION_STORE');

export type FieldType = 'keyword' | 'long' | 'date' | 'boolean';

export interface IndexDefinition {
  name: string;
  /** Fields that can be filtered, sorted or counted on; other document fields are stored only. */
  fields: Record<string, FieldType>;
}

export type FieldValue = string | number | boolean;

export interface DocumentWrite {
  index: string;
  id: string;
  /** Monotonic per document, e.g. the log offset of the event that produced this state. */
  version: number;
  doc: Record<string, unknown>;
}

export interface Watermark {
  /** Name of the projection (e.g. `commands`). */
  name: string;
  /** Per source partition: the offset of the last record whose effects are searchable. */
  positions: Record<string, number>;
}

export type Filter = {
  [field: string]:
    | FieldValue
    | FieldValue[]
    | { gt?: number | string; gte?: number | string; lt?: number | string; lte?: number | string };
};

export interface QueryOptions {
  filter?: Filter;
  /** Sort fields, ascending unless prefixed with `-`. `id` is always the final tiebreaker. */
  sort?: string[];
  limit?: number;
  /** Opaque cursor from a previous page's `nextCursor`. */
  cursor?: string;
}

export interface StoredDocument<T = Record<string, unknown>> {
  id: string;
  version: number;
  doc: T;
}

export interface QueryPage<T = Record<string, unknown>> {
  items: StoredDocument<T>[];
  nextCursor?: string;
}

export interface ProjectionStore {
  ensureIndices(definitions: IndexDefinition[]): Promise<void>;
  /** Upsert documents (version-guarded) and then store the watermark, if given. */
  apply(writes: DocumentWrite[], watermark?: Watermark): Promise<void>;
  get<T = Record<string, unknown>>(index: string, id: string): Promise<StoredDocument<T> | undefined>;
  query<T = Record<string, unknown>>(index: string, options?: QueryOptions): Promise<QueryPage<T>>;
  count(index: string, filter?: Filter): Promise<number>;
  countBy(index: string, field: string, filter?: Filter): Promise<Record<string, number>>;
  getWatermark(name: string): Promise<Watermark | undefined>;
  /** Delete every document and watermark (used by projection rebuilds and tests). */
  reset(indices: string[]): Promise<void>;
  close(): Promise<void>;
}
