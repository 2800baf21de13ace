import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { Client, errors, type ClientOptions } from '@opensearch-project/opensearch';
import {
  IndexDefinitionConflictError,
  IndexNotFoundError,
  InvalidFilterError,
  InvalidIndexDefinitionError,
  InvalidIndexNameError,
  InvalidQueryError,
  ProjectionError,
  ProjectionStoreClosedError,
  UnknownFieldError,
} from '../../projection.errors';
import type {
  DocumentWrite,
  FieldType,
  Filter,
  IndexDefinition,
  ProjectionStore,
  QueryOptions,
  QueryPage,
  StoredDocument,
  Watermark,
} from '../../projection.port';
import {
  decodeSource,
  encodeSource,
  fieldPath,
  fieldsFromProperties,
  ID_FIELD,
  mappingProperties,
  pathClash,
  STORE_MARKER,
} from './opensearch-documents';
import { OpenSearchRequestError, OpenSearchUnavailableError } from './opensearch-projection-store.errors';
import {
  bulkItems,
  compositePage,
  countOf,
  errorReason,
  errorType,
  foundDocument,
  searchHits,
  singleMapping,
  type BulkItem,
} from './opensearch-responses';
import {
  decodeCursor,
  DEFAULT_QUERY_LIMIT,
  encodeCursor,
  isoDateMillis,
  isPlainObject,
  MAX_ID_BYTES,
  MAX_QUERY_LIMIT,
  sortSpec,
  validateFieldDefinition,
  validateIndexName,
  validateDocumentWrite,
  validateIndexPrefix,
  validateWatermark,
  type CursorValue,
  type KeyType,
  type SortKey,
} from '../../projection-rules';

export interface OpenSearchProjectionStoreOptions {
  /** URL of an OpenSearch node, e.g. `http://localhost:9200` (credentials may be part of it). */
  node: string;
  /** Prepended to every index name, e.g. `herald.` (same rules as the embedded adapter's). */
  indexPrefix?: string;
  /**
   * How `apply` makes its documents searchable before it resolves: `wait_for` (default) waits
   * for the next scheduled refresh (up to `index.refresh_interval`, 1 s by default); `true`
   * refreshes at once (quicker to resolve, more segments under write load).
   */
  refresh?: 'wait_for' | true;
  /** Replicas of every index this store creates; default 0 (a single node). Always 1 shard. */
  replicas?: number;
  /**
   * `index.refresh_interval` of the indices this store creates (e.g. `200ms`); default
   * OpenSearch's (1 s). With `refresh: 'wait_for'` it bounds how long `apply` waits.
   */
  refreshInterval?: string;
  /** Further client options (authentication, TLS, timeouts); `node` above wins. */
  clientOptions?: Omit<ClientOptions, 'node' | 'nodes'>;
}

interface IndexState {
  name: string;
  /** `<prefix><name>`: what dashboards and every request use. */
  alias: string;
  /** The index behind the alias (`<alias>~0`, then a new one per reset). */
  concrete: string;
  fields: Map<string, FieldType>;
}

interface PreparedWrite {
  state: IndexState;
  id: string;
  version: number;
  /** `_source` as JSON. */
  source: string;
}

type Json = Record<string, unknown>;
type FilterValue = string | number | boolean;

interface SendOptions {
  /** An object, or JSON text. */
  body?: Json | string;
  /** Newline-delimited JSON, for `_bulk`. */
  ndjson?: string;
  query?: Record<string, string | number | boolean>;
  /** HTTP statuses returned as a result instead of thrown. */
  ignore?: number[];
}

interface Sent {
  status: number;
  body: unknown;
}

/** `~` never occurs in index names or prefixes: aliases, their indices and the meta index cannot collide. */
const GENERATION_SEPARATOR = '~';
const WATERMARK_INDEX = '~watermarks';
/** OpenSearch's limit on index names (bytes; ours are ASCII), and the same less room for `~<generation>`. */
const MAX_INDEX_LENGTH = 255;
const MAX_ALIAS_LENGTH = MAX_INDEX_LENGTH - 24;
const RANGE_OPERATORS: ReadonlySet<string> = new Set(['gt', 'gte', 'lt', 'lte']);
/** What OpenSearch puts in `sort` for a missing value with `missing: _last`, as JSON (see cursorValue). */
const MISSING_LONG = { asc: '9223372036854775807', desc: '-9223372036854775808' } as const;
const MISSING_BOOLEAN = { asc: '2147483647', desc: '-2147483648' } as const;
/** Bulk requests stay far below `http.max_content_length` (100 MB by default). */
const BULK_CHUNK_BYTES = 8 * 1024 * 1024;
/** Retries of bulk items refused with 429 (write queue full); safe thanks to external versions. */
const BULK_RETRIES = 4;
const WATERMARK_ATTEMPTS = 25;
const REINDEX_PAGE = 1_000;
const COMPOSITE_PAGE = 10_000;

/**
 * ProjectionStore on OpenSearch: one index per IndexDefinition, versioned upserts by bulk with
 * external versioning, watermarks in a small meta index. Same semantics as the embedded adapter
 * (the contract suite runs against both); see opensearch-documents.ts for the document layout.
 *
 * Layout, for a prefix `p`:
 * - index `name` is the alias `p<name>` of the concrete index `p<name>~0` (1 shard, `dynamic:
 *   false`, explicit properties for declared fields, `_meta.herald` marking it as ours, result
 *   window 10,001 for a page of 10,000 plus one). `reset` swaps the alias to a fresh empty index
 *   and deletes the old one in one atomic `_aliases` call: readers never see a missing index, and
 *   no version tombstone of a deleted document survives (a `delete_by_query` would leave them for
 *   `index.gc_deletes`, and external versioning would then refuse the lower versions of a
 *   rebuild). Writes use `require_alias`, so a write never auto-creates an unmapped index;
 * - index `p~watermarks` holds one document per projection name: `{ name, positions }`, merged
 *   per partition with max under optimistic concurrency (`if_seq_no`/`if_primary_term`).
 *
 * `apply` validates every write before sending anything, keeps the highest version per document,
 * bulk-indexes with `version_type=external` and `refresh=wait_for` (409 = an older or equal
 * version, ignored), and only then merges the watermark. Watermarks are read with a realtime GET,
 * so storing one needs no refresh.
 */
export class OpenSearchProjectionStoreAdapter implements ProjectionStore {
  private readonly client: Client;
  /** The node URL without credentials, for messages. */
  private readonly url: string;
  private readonly prefix: string;
  private readonly refresh: 'wait_for' | 'true';
  private readonly replicas: number;
  private readonly refreshInterval: string | undefined;
  private readonly watermarkIndex: string;
  private readonly indices = new Map<string, IndexState>();
  private watermarkIndexReady = false;
  private closed = false;

  constructor(options: OpenSearchProjectionStoreOptions) {
    this.prefix = options.indexPrefix ?? '';
    validateIndexPrefix(this.prefix);
    let url: URL;
    try {
      url = new URL(options.node);
    } catch {
      throw new TypeError('the OpenSearch node must be a URL such as http://localhost:9200');
    }
    url.username = '';
    url.password = '';
    this.url = url.toString().replace(/\/$/, '');
    this.refresh = options.refresh === true ? 'true' : 'wait_for';
    this.replicas = options.replicas ?? 0;
    if (!Number.isSafeInteger(this.replicas) || this.replicas < 0) {
      throw new RangeError(`replicas must be a non-negative integer, got ${String(options.replicas)}`);
    }
    this.refreshInterval = options.refreshInterval;
    this.watermarkIndex = `${this.prefix}${WATERMARK_INDEX}`;
    if (this.watermarkIndex.length > MAX_INDEX_LENGTH) {
      throw new InvalidIndexNameError(
        this.prefix,
        `the index prefix is longer than ${MAX_INDEX_LENGTH - WATERMARK_INDEX.length} characters`,
      );
    }
    this.client = new Client({
      ...options.clientOptions,
      node: options.node,
      // `__proto__` keys never reach OpenSearch (they are escaped), but a document may well have
      // a `constructor.prototype` path; JSON.parse keeps such keys as plain own properties.
      disablePrototypePoisoningProtection: 'constructor',
    });
  }

  ensureIndices(definitions: IndexDefinition[]): Promise<void> {
    return this.run('ensureIndices', async () => {
      const wanted = new Map<string, Map<string, FieldType>>();
      for (const definition of definitions) {
        this.validateName(definition.name);
        const fields = wanted.get(definition.name) ?? new Map<string, FieldType>();
        for (const [field, type] of Object.entries(definition.fields ?? {})) {
          validateFieldDefinition(definition.name, field, type);
          const previous = fields.get(field);
          if (previous !== undefined && previous !== type) {
            throw new IndexDefinitionConflictError(definition.name, field, previous, type);
          }
          fields.set(field, type);
        }
        wanted.set(definition.name, fields);
      }
      for (const [name, fields] of wanted) assertNoPathClash(name, new Map(), fields);
      for (const [name, fields] of wanted) await this.ensureIndex(name, fields);
    });
  }

  apply(writes: DocumentWrite[], watermark?: Watermark): Promise<void> {
    return this.run('apply', async () => {
      // Validate everything first: a rejected apply sends nothing, and its watermark is stored
      // only after its documents are searchable.
      const prepared: PreparedWrite[] = [];
      for (const write of writes) prepared.push(await this.prepareWrite(write));
      const positions = watermark === undefined ? undefined : validateWatermark(watermark);
      if (prepared.length > 0) await this.indexDocuments(latestPerDocument(prepared));
      if (watermark !== undefined && positions !== undefined) await this.storeWatermark(watermark.name, positions);
    });
  }

  get<T = Record<string, unknown>>(index: string, id: string): Promise<StoredDocument<T> | undefined> {
    return this.run('get', async () => {
      const state = await this.index(index);
      if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id) > MAX_ID_BYTES) return undefined;
      const response = await this.send('GET', `/${encodeURIComponent(state.alias)}/_doc/${encodeURIComponent(id)}`, {
        ignore: [404],
      });
      this.assertIndexFound(state, response);
      const found = foundDocument('get', response.body);
      return found ? { id, version: found.version, doc: decodeSource(found.source) as T } : undefined;
    });
  }

  query<T = Record<string, unknown>>(index: string, options: QueryOptions = {}): Promise<QueryPage<T>> {
    return this.run('query', async () => {
      const state = await this.index(index);
      const limit = options.limit ?? DEFAULT_QUERY_LIMIT;
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
        throw new InvalidQueryError(`limit must be an integer from 1 to ${MAX_QUERY_LIMIT}, got ${String(limit)}`);
      }
      const sort = await this.sortKeys(state, options.sort ?? []);
      const spec = sortSpec(sort);
      const body: Json = {
        // One extra hit tells whether another page exists, so `nextCursor` is never a dead end.
        size: limit + 1,
        query: await this.filterQuery(state, options.filter),
        sort: sort.map((key) => ({
          [fieldPath(key.field)]:
            key.type === 'id' ? { order: direction(key) } : { order: direction(key), missing: '_last' },
        })),
        version: true,
        track_total_hits: false,
      };
      let request: Json | string = body;
      if (options.cursor !== undefined) {
        // Written as JSON text: a missing long or date sorts as ±2^63-1, which a JS number cannot
        // hold (and OpenSearch parses a string for a date field with the date format, which fails).
        const after = decodeCursor(options.cursor, spec, sort).map((value, i) => searchAfterJson(sort[i], value));
        request = `${JSON.stringify(body).slice(0, -1)},"search_after":[${after.join(',')}]}`;
      }
      const hits = searchHits('query', (await this.post(state, '_search', request)).body);
      const hasMore = hits.length > limit;
      const pageHits = hasMore ? hits.slice(0, limit) : hits;
      const page: QueryPage<T> = {
        items: pageHits.map((hit) => ({ id: hit.id, version: hit.version, doc: decodeSource(hit.source) as T })),
      };
      const last = pageHits[pageHits.length - 1];
      if (hasMore && last !== undefined) {
        page.nextCursor = encodeCursor(
          spec,
          sort.map((key, i) => cursorValue(key, last.sort[i])),
        );
      }
      return page;
    });
  }

  count(index: string, filter?: Filter): Promise<number> {
    return this.run('count', async () => {
      const state = await this.index(index);
      const response = await this.post(state, '_count', { query: await this.filterQuery(state, filter) });
      return countOf('count', response.body);
    });
  }

  countBy(index: string, field: string, filter?: Filter): Promise<Record<string, number>> {
    return this.run('countBy', async () => {
      const state = await this.index(index);
      const type = await this.fieldType(state, field, 'countBy');
      const query = await this.filterQuery(state, filter);
      // A composite aggregation, paged: every value is counted exactly, however many there are.
      const counts: Array<[string, number]> = [];
      let after: Json | undefined;
      do {
        const composite: Json = {
          size: COMPOSITE_PAGE,
          sources: [{ value: { terms: { field: fieldPath(field) } } }],
          ...(after !== undefined ? { after } : {}),
        };
        const body = { size: 0, track_total_hits: false, query, aggs: { values: { composite } } };
        const page = compositePage('countBy', (await this.post(state, '_search', body)).body, 'values');
        for (const bucket of page.buckets) counts.push([bucketKey(type, bucket.key), bucket.count]);
        after = page.buckets.length < COMPOSITE_PAGE ? undefined : page.afterKey;
      } while (after !== undefined);
      // Most frequent first, then by value (the composite order), as the embedded adapter orders them.
      counts.sort((a, b) => b[1] - a[1]);
      return Object.fromEntries(counts);
    });
  }

  getWatermark(name: string): Promise<Watermark | undefined> {
    return this.run('getWatermark', async () => {
      if (typeof name !== 'string' || name.length === 0) return undefined;
      const response = await this.send('GET', this.watermarkPath(name), { ignore: [404] });
      const found = foundDocument('getWatermark', response.body);
      return found ? { name, positions: Object.fromEntries(storedPositions(found.source)) } : undefined;
    });
  }

  /**
   * Deletes every document of the given indices (which stay defined, so writes need no new
   * `ensureIndices`) and every watermark of this store. Indices that do not exist are skipped.
   */
  reset(indices: string[]): Promise<void> {
    return this.run('reset', async () => {
      indices.forEach((name) => this.validateName(name));
      for (const name of indices) {
        const state = await this.readIndex(name);
        if (state) await this.replaceWithEmptyIndex(state);
      }
      // Watermarks are written without a refresh (they are read by realtime GET); delete_by_query
      // searches, so refresh first to let it see every one.
      const watermarks = encodeURIComponent(this.watermarkIndex);
      await this.send('POST', `/${watermarks}/_refresh`, { ignore: [404] });
      await this.send('POST', `/${watermarks}/_delete_by_query`, {
        body: { query: { match_all: {} } },
        query: { refresh: true, conflicts: 'proceed' },
        ignore: [404],
      });
    });
  }

  /** Closes the client; idempotent. Any later call rejects with `store_closed`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.client.close();
    } catch {
      // nothing left to release
    }
  }

  // -------------------------------------------------------------------------------------------
  // Indices
  // -------------------------------------------------------------------------------------------

  private validateName(name: unknown): asserts name is string {
    validateIndexName(name);
    if (this.alias(name).length > MAX_ALIAS_LENGTH) {
      throw new InvalidIndexNameError(
        name,
        `with the prefix "${this.prefix}" longer than ${MAX_ALIAS_LENGTH} characters`,
      );
    }
  }

  private alias(name: string): string {
    return `${this.prefix}${name}`;
  }

  /** The index's state; read from OpenSearch on a miss (another store may have created it). */
  private async index(name: unknown, refresh = false): Promise<IndexState> {
    this.validateName(name);
    const cached = refresh ? undefined : this.indices.get(name);
    if (cached) return cached;
    const state = await this.readIndex(name);
    if (!state) {
      this.indices.delete(name);
      throw new IndexNotFoundError(name);
    }
    this.indices.set(name, state);
    return state;
  }

  private async readIndex(name: string): Promise<IndexState | undefined> {
    const alias = this.alias(name);
    const response = await this.send('GET', `/${encodeURIComponent(alias)}/_mapping`, { ignore: [404] });
    if (response.status === 404) return undefined;
    const mapping = singleMapping('read index definition', alias, response.body);
    if (!mapping) return undefined;
    const meta = mapping.mappings._meta;
    if (!isPlainObject(meta) || !isPlainObject(meta.herald) || meta.herald.store !== STORE_MARKER.herald.store) {
      throw new InvalidIndexDefinitionError(
        name,
        `the OpenSearch index "${mapping.concrete}" was not created by a projection store (no _meta.herald)`,
      );
    }
    return { name, alias, concrete: mapping.concrete, fields: fieldsFromProperties(mapping.mappings.properties) };
  }

  private async ensureIndex(name: string, fields: Map<string, FieldType>): Promise<void> {
    let state = await this.readIndex(name);
    if (!state) {
      const alias = this.alias(name);
      const concrete = `${alias}${GENERATION_SEPARATOR}0`;
      const created = await this.send('PUT', `/${encodeURIComponent(concrete)}`, {
        body: this.indexBody(fields, alias),
        ignore: [400],
      });
      if (created.status < 300) {
        this.indices.set(name, { name, alias, concrete, fields: new Map(fields) });
        return;
      }
      if (errorType(created.body) !== 'resource_already_exists_exception') {
        throw new OpenSearchRequestError('create index', created.status, errorReason(created.body));
      }
      // Created concurrently by another store: merge into that one.
      await this.waitForPrimary(concrete);
      state = await this.readIndex(name);
      if (!state) {
        throw new OpenSearchRequestError(
          'create index',
          created.status,
          `the index ${concrete} exists but the alias ${alias} does not point to it; delete it or restore the alias`,
        );
      }
    }

    const added = new Map<string, FieldType>();
    for (const [field, type] of fields) {
      const current = state.fields.get(field);
      if (current === type) continue;
      if (current !== undefined) throw new IndexDefinitionConflictError(name, field, current, type);
      added.set(field, type);
    }
    if (added.size > 0) {
      assertNoPathClash(name, state.fields, added);
      const put = await this.send('PUT', `/${encodeURIComponent(state.alias)}/_mapping`, {
        body: { properties: mappingProperties(added) },
        ignore: [400],
      });
      if (put.status >= 300) {
        // Most likely another store declared one of these fields with another type meanwhile.
        const now = await this.index(name, true);
        for (const [field, type] of added) {
          const current = now.fields.get(field);
          if (current !== undefined && current !== type)
            throw new IndexDefinitionConflictError(name, field, current, type);
        }
        throw new OpenSearchRequestError('put mapping', put.status, errorReason(put.body));
      }
      state = { ...state, fields: new Map([...state.fields, ...added]) };
      this.indices.set(name, state);
      await this.reindexExisting(state);
    }
    this.indices.set(name, state);
  }

  private indexSettings(): Json {
    return {
      number_of_shards: 1,
      number_of_replicas: this.replicas,
      ...(this.refreshInterval !== undefined ? { refresh_interval: this.refreshInterval } : {}),
    };
  }

  /**
   * Waits until the primary shard of an index that another store has just created is active
   * (its own create request waited for that; this one only learnt that the index exists).
   * Not `wait_for_status=yellow`: a new index whose primary is still initializing counts as yellow.
   */
  private async waitForPrimary(index: string): Promise<void> {
    const health = await this.send('GET', `/_cluster/health/${encodeURIComponent(index)}`, {
      query: { wait_for_active_shards: 1, timeout: '30s' },
      ignore: [408],
    });
    if (health.status === 408) {
      throw new OpenSearchRequestError('wait for index', 408, `the primary shard of ${index} is not active after 30 s`);
    }
  }

  private indexBody(fields: Iterable<[string, FieldType]>, alias?: string): Json {
    return {
      settings: {
        index: { ...this.indexSettings(), max_result_window: MAX_QUERY_LIMIT + 1 },
      },
      mappings: {
        dynamic: false,
        _meta: STORE_MARKER,
        properties: { [ID_FIELD]: { type: 'keyword' }, ...mappingProperties(fields) },
      },
      ...(alias !== undefined ? { aliases: { [alias]: {} } } : {}),
    };
  }

  /**
   * Re-indexes the documents stored before fields were added, each with its own version
   * (`external_gte`), so they become filterable on the new fields like new documents (the
   * embedded adapter computes its columns from stored documents too). A document rewritten
   * meanwhile with a greater version is left alone (409); one whose value does not fit the new
   * field keeps reading as missing on it.
   */
  private async reindexExisting(state: IndexState): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const body: Json = {
        size: REINDEX_PAGE,
        query: { match_all: {} },
        sort: [{ [ID_FIELD]: { order: 'asc' } }],
        version: true,
        track_total_hits: false,
        ...(after !== undefined ? { search_after: [after] } : {}),
      };
      const hits = searchHits('reindex', (await this.post(state, '_search', body)).body);
      if (hits.length > 0) {
        const lines = hits.map(
          (hit) =>
            `${JSON.stringify({ index: { _index: state.alias, _id: hit.id, version: hit.version, version_type: 'external_gte' } })}\n` +
            `${JSON.stringify(hit.source)}\n`,
        );
        await this.bulk('reindex', lines, false);
      }
      const last = hits[hits.length - 1];
      if (hits.length < REINDEX_PAGE || last === undefined) break;
      after = last.id;
    }
    await this.send('POST', `/${encodeURIComponent(state.alias)}/_refresh`);
  }

  private async replaceWithEmptyIndex(state: IndexState): Promise<void> {
    const fresh = `${state.alias}${GENERATION_SEPARATOR}${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    await this.send('PUT', `/${encodeURIComponent(fresh)}`, { body: this.indexBody(state.fields) });
    const swap = await this.send('POST', '/_aliases', {
      body: { actions: [{ add: { index: fresh, alias: state.alias } }, { remove_index: { index: state.concrete } }] },
      ignore: [400, 404],
    });
    if (swap.status < 300) {
      this.indices.set(state.name, { ...state, concrete: fresh });
      return;
    }
    await this.send('DELETE', `/${encodeURIComponent(fresh)}`, { ignore: [404] });
    const now = await this.readIndex(state.name);
    if (now === undefined || now.concrete === state.concrete) {
      throw new OpenSearchRequestError('reset', swap.status, errorReason(swap.body));
    }
    // Another store reset it at the same time: it is empty (or being refilled) already.
    this.indices.set(state.name, now);
  }

  private async fieldType(state: IndexState, field: string, usage: 'filter' | 'sort' | 'countBy'): Promise<FieldType> {
    const type = state.fields.get(field) ?? (await this.index(state.name, true)).fields.get(field);
    if (type === undefined) throw new UnknownFieldError(state.name, field, usage);
    return type;
  }

  // -------------------------------------------------------------------------------------------
  // Writes
  // -------------------------------------------------------------------------------------------

  private async prepareWrite(write: DocumentWrite): Promise<PreparedWrite> {
    const state = await this.index(write.index);
    const { id, version, json } = validateDocumentWrite(state.name, state.fields, write);
    return { state, id, version, source: encodeSource(id, json) };
  }

  private async indexDocuments(writes: PreparedWrite[]): Promise<void> {
    let chunk: string[] = [];
    let bytes = 0;
    for (const write of writes) {
      const action = {
        index: { _index: write.state.alias, _id: write.id, version: write.version, version_type: 'external' },
      };
      const lines = `${JSON.stringify(action)}\n${write.source}\n`;
      if (chunk.length > 0 && bytes + lines.length > BULK_CHUNK_BYTES) {
        await this.bulk('apply', chunk, true);
        chunk = [];
        bytes = 0;
      }
      chunk.push(lines);
      bytes += lines.length;
    }
    if (chunk.length > 0) await this.bulk('apply', chunk, true);
  }

  /**
   * One `_bulk` of `index` actions (one entry of `actions` per document). Version conflicts are
   * the expected outcome of stale writes; items refused with 429 are retried with a backoff. With
   * `strict`, any other item error fails the call (naming the first), else it is skipped.
   */
  private async bulk(operation: string, actions: string[], strict: boolean): Promise<void> {
    let pending = actions;
    for (let attempt = 0; ; attempt++) {
      const response = await this.send('POST', '/_bulk', {
        ndjson: pending.join(''),
        query: { refresh: strict ? this.refresh : false, require_alias: true },
      });
      const items = bulkItems(operation, response.body);
      const retry: string[] = [];
      const failures: BulkItem[] = [];
      items.forEach((item, i) => {
        const action = pending[i];
        if (item.status < 300 || item.status === 409) return;
        if (item.status === 429 && action !== undefined) retry.push(action);
        else failures.push(item);
      });
      const first = failures[0];
      if (strict && first !== undefined) {
        if (first.errorType === 'index_not_found_exception') {
          const missing = [...this.indices.values()].find((state) => first.index === state.alias);
          if (missing) {
            this.indices.delete(missing.name);
            throw new IndexNotFoundError(missing.name);
          }
        }
        throw new OpenSearchRequestError(
          operation,
          first.status,
          `${failures.length} of ${items.length} documents were not written; first: "${first.id}": ${first.reason ?? 'no reason'}`,
        );
      }
      if (retry.length === 0) return;
      if (attempt >= BULK_RETRIES) {
        throw new OpenSearchRequestError(
          operation,
          429,
          `${retry.length} documents still refused after ${attempt + 1} attempts (write queue full)`,
        );
      }
      await delay(100 * 3 ** attempt);
      pending = retry;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Watermarks
  // -------------------------------------------------------------------------------------------

  private watermarkPath(name: string): string {
    // `_id` is limited to 512 bytes and a name is not: long names (and names that could be taken
    // for a hash) are stored under a hash; the name itself is in the document.
    const id =
      Buffer.byteLength(name) <= MAX_ID_BYTES && !name.startsWith('#')
        ? name
        : `#${createHash('sha256').update(name).digest('hex')}`;
    return `/${encodeURIComponent(this.watermarkIndex)}/_doc/${encodeURIComponent(id)}`;
  }

  private async ensureWatermarkIndex(): Promise<void> {
    if (this.watermarkIndexReady) return;
    const created = await this.send('PUT', `/${encodeURIComponent(this.watermarkIndex)}`, {
      body: {
        settings: { index: this.indexSettings() },
        mappings: { dynamic: false, _meta: STORE_MARKER, properties: { name: { type: 'keyword' } } },
      },
      ignore: [400],
    });
    if (created.status >= 300) {
      if (errorType(created.body) !== 'resource_already_exists_exception') {
        throw new OpenSearchRequestError('create watermark index', created.status, errorReason(created.body));
      }
      await this.waitForPrimary(this.watermarkIndex);
    }
    this.watermarkIndexReady = true;
  }

  /** Merges positions into the stored watermark (max per partition), retrying on concurrent updates. */
  private async storeWatermark(name: string, positions: Record<string, number>): Promise<void> {
    await this.ensureWatermarkIndex();
    const path = this.watermarkPath(name);
    for (let attempt = 1; ; attempt++) {
      const current = await this.send('GET', path, { ignore: [404] });
      if (errorType(current.body) === 'index_not_found_exception') {
        // Deleted behind our back: recreate it (a write would auto-create it without a mapping).
        this.watermarkIndexReady = false;
        await this.ensureWatermarkIndex();
      }
      const found = foundDocument('store watermark', current.body);
      const merged = found ? storedPositions(found.source) : new Map<string, number>();
      let changed = found === undefined;
      for (const [partition, offset] of Object.entries(positions)) {
        const stored = merged.get(partition);
        if (stored === undefined || offset > stored) {
          merged.set(partition, offset);
          changed = true;
        }
      }
      if (!changed) return;
      const written = await this.send('PUT', path, {
        body: { name, positions: Object.fromEntries(merged) },
        query: found ? { if_seq_no: found.seqNo, if_primary_term: found.primaryTerm } : { op_type: 'create' },
        ignore: [409],
      });
      if (written.status !== 409) return;
      if (attempt >= WATERMARK_ATTEMPTS) {
        throw new OpenSearchRequestError(
          'store watermark',
          409,
          `watermark "${name}" kept changing under concurrent writers (${attempt} attempts)`,
        );
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Queries
  // -------------------------------------------------------------------------------------------

  private async sortKeys(state: IndexState, sort: string[]): Promise<SortKey[]> {
    if (!Array.isArray(sort)) throw new InvalidQueryError('sort must be an array of field names');
    const keys: SortKey[] = [];
    for (const entry of sort) {
      if (typeof entry !== 'string' || entry === '' || entry === '-') {
        throw new InvalidQueryError(`invalid sort entry ${JSON.stringify(entry)}: use "field" or "-field"`);
      }
      const descending = entry.startsWith('-');
      const field = descending ? entry.slice(1) : entry;
      if (field === 'id') {
        keys.push({ field, type: 'id', descending });
        return keys; // `id` is unique: later keys could never matter.
      }
      keys.push({ field, type: await this.fieldType(state, field, 'sort'), descending });
    }
    keys.push({ field: 'id', type: 'id', descending: false });
    return keys;
  }

  /** term (scalar), terms (array; empty matches nothing), range (object; no bounds = exists). */
  private async filterQuery(state: IndexState, filter: Filter | undefined): Promise<Json> {
    if (filter !== undefined && !isPlainObject(filter)) {
      throw new InvalidFilterError(state.name, '*', 'a filter must be an object of field conditions');
    }
    const clauses: Json[] = [];
    for (const [field, condition] of Object.entries(filter ?? {})) {
      const type: KeyType = field === 'id' ? 'id' : await this.fieldType(state, field, 'filter');
      const path = fieldPath(field);
      const value = (raw: unknown): FilterValue => filterValue(state.name, field, type, raw);
      if (condition === undefined || condition === null) {
        throw new InvalidFilterError(state.name, field, 'the condition is missing (undefined or null)');
      } else if (Array.isArray(condition)) {
        const values = condition.map(value).filter((v) => !beyondLong(type, v));
        clauses.push(values.length === 0 ? { match_none: {} } : { terms: { [path]: values } });
      } else if (typeof condition === 'object') {
        const bounds = Object.entries(condition);
        let exists = bounds.length === 0;
        const range: Record<string, FilterValue> = {};
        for (const [operator, bound] of bounds) {
          if (!RANGE_OPERATORS.has(operator)) {
            throw new InvalidFilterError(
              state.name,
              field,
              `unknown range operator "${operator}" (use gt, gte, lt, lte)`,
            );
          }
          if (bound === undefined) continue;
          const limit = value(bound);
          if (!beyondLong(type, limit)) {
            range[operator] = limit;
          } else if ((operator === 'gt' || operator === 'gte') === limit > 0) {
            clauses.push({ match_none: {} }); // e.g. gt 1e20: no long is greater
          } else {
            exists = true; // e.g. lt 1e20: every value is less
          }
        }
        if (Object.keys(range).length > 0) clauses.push({ range: { [path]: range } });
        else if (exists) clauses.push({ exists: { field: path } });
      } else {
        const term = value(condition);
        clauses.push(beyondLong(type, term) ? { match_none: {} } : { term: { [path]: term } });
      }
    }
    return clauses.length === 0 ? { match_all: {} } : { bool: { filter: clauses } };
  }

  // -------------------------------------------------------------------------------------------
  // Transport
  // -------------------------------------------------------------------------------------------

  /**
   * Runs one port operation: rejects once closed, and turns client errors into the port's
   * errors (an unreachable node names its URL).
   */
  private async run<T>(operation: string, work: () => Promise<T>): Promise<T> {
    if (this.closed) throw new ProjectionStoreClosedError();
    try {
      return await work();
    } catch (error) {
      throw this.translate(operation, error);
    }
  }

  private translate(operation: string, error: unknown): Error {
    if (error instanceof ProjectionError) return error;
    if (this.closed) return new ProjectionStoreClosedError();
    if (
      error instanceof errors.ConnectionError ||
      error instanceof errors.NoLivingConnectionsError ||
      error instanceof errors.TimeoutError
    ) {
      return new OpenSearchUnavailableError(this.url, error.message);
    }
    if (error instanceof errors.ResponseError) {
      return new OpenSearchRequestError(operation, error.statusCode, errorReason(error.body));
    }
    return error instanceof Error ? error : new Error(String(error));
  }

  /**
   * One HTTP request through the client's transport (its retries, connection pool, serializer).
   * The generated per-API types do not describe every valid request (`search_after` with null
   * for a missing keyword, for one), so bodies are built here and answers narrowed in
   * opensearch-responses.ts.
   */
  private async send(
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    path: string,
    options: SendOptions = {},
  ): Promise<Sent> {
    const response = await this.client.transport.request(
      {
        method,
        path,
        querystring: options.query ?? {},
        ...(options.body !== undefined ? { body: options.body } : {}),
        ...(options.ndjson !== undefined ? { bulkBody: options.ndjson } : {}),
      },
      { ignore: options.ignore ?? [] },
    );
    const body: unknown = response.body;
    return { status: response.statusCode ?? 0, body };
  }

  /** POST `<alias>/<endpoint>`; a missing index is `IndexNotFoundError` (and leaves the cache). */
  private async post(state: IndexState, endpoint: '_search' | '_count', body: Json | string): Promise<Sent> {
    const response = await this.send('POST', `/${encodeURIComponent(state.alias)}/${endpoint}`, {
      body,
      ignore: [404],
    });
    this.assertIndexFound(state, response);
    return response;
  }

  private assertIndexFound(state: IndexState, response: Sent): void {
    if (response.status === 404 && errorType(response.body) === 'index_not_found_exception') {
      this.indices.delete(state.name);
      throw new IndexNotFoundError(state.name);
    }
  }
}

function direction(key: SortKey): 'asc' | 'desc' {
  return key.descending ? 'desc' : 'asc';
}

/** Per document, the write with the highest version (the first of equals, as later equals are no-ops). */
function latestPerDocument(writes: PreparedWrite[]): PreparedWrite[] {
  const latest = new Map<string, PreparedWrite>();
  for (const write of writes) {
    const key = `${write.state.alias}\n${write.id}`;
    const current = latest.get(key);
    if (current === undefined || write.version > current.version) latest.set(key, write);
  }
  return [...latest.values()];
}

function assertNoPathClash(index: string, existing: Map<string, FieldType>, added: Map<string, FieldType>): void {
  const clash = pathClash([...existing.keys(), ...added.keys()]);
  if (clash === undefined) return;
  // OpenSearch maps `a.b` as the property `b` of the object `a`: `a` cannot also hold a value.
  const [valueField, objectField] = clash;
  const type = existing.get(valueField) ?? added.get(valueField) ?? 'keyword';
  throw new IndexDefinitionConflictError(
    index,
    valueField,
    existing.has(valueField) ? type : `object (for "${objectField}")`,
    existing.has(valueField) ? `object (for "${objectField}")` : type,
  );
}

function storedPositions(source: Record<string, unknown>): Map<string, number> {
  const positions = new Map<string, number>();
  if (isPlainObject(source.positions)) {
    for (const [partition, offset] of Object.entries(source.positions)) {
      if (typeof offset === 'number') positions.set(partition, offset);
    }
  }
  return positions;
}

/**
 * A number no long (or epoch-millisecond date) can reach: OpenSearch refuses it in a query, the
 * embedded adapter simply compares; the filter clause is decided without asking OpenSearch.
 */
function beyondLong(type: KeyType, value: FilterValue): value is number {
  return (type === 'long' || type === 'date') && typeof value === 'number' && (value >= 2 ** 63 || value < -(2 ** 63));
}

/** A filter value in the form OpenSearch compares with the field's indexed values. */
function filterValue(index: string, field: string, type: KeyType, value: unknown): FilterValue {
  const fail = (reason: string): never => {
    throw new InvalidFilterError(index, field, `${JSON.stringify(value) ?? String(value)} ${reason}`);
  };
  switch (type) {
    case 'id':
    case 'keyword':
      if (typeof value === 'string') return value;
      if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') return String(value);
      return fail(`is not a valid ${type} value`);
    case 'long':
      if (typeof value === 'number' && Number.isFinite(value)) return value;
      if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
      return fail('is not a number');
    case 'boolean':
      if (value === true || value === 'true') return true;
      if (value === false || value === 'false') return false;
      return fail('is not a boolean');
    case 'date': {
      // As epoch milliseconds: OpenSearch would round a partial date up for `lte`/`gt` (a whole
      // day for `lte: "2025-05-01"`), the embedded adapter compares instants.
      if (typeof value === 'number' && Number.isFinite(value)) return value;
      const millis = typeof value === 'string' ? isoDateMillis(value) : undefined;
      return millis ?? fail('is not an ISO-8601 date or epoch milliseconds');
    }
  }
}

/**
 * A hit's sort value as a cursor value: OpenSearch reports a missing value (sorted last) as the
 * extreme of the sort type — ±2^63-1 for long/date, ±2^31-1 for boolean, null for keyword — which
 * the cursor stores as null, like the embedded adapter.
 */
function cursorValue(key: SortKey, value: unknown): CursorValue {
  switch (key.type) {
    case 'id':
      if (typeof value === 'string') return value;
      break;
    case 'keyword':
      if (typeof value === 'string' || value === null) return value;
      break;
    case 'long':
    case 'date':
      if (typeof value === 'number') return Number.isSafeInteger(value) ? value : null;
      break;
    case 'boolean':
      if (value === 0 || value === 1) return value;
      if (typeof value === 'number') return null;
      break;
  }
  throw new OpenSearchRequestError(
    'query',
    undefined,
    `unexpected sort value ${JSON.stringify(value)} for "${key.field}"`,
  );
}

/** A cursor value as JSON for `search_after` (the inverse of cursorValue). */
function searchAfterJson(key: SortKey | undefined, value: CursorValue): string {
  if (value !== null || key === undefined) return JSON.stringify(value);
  switch (key.type) {
    case 'id':
    case 'keyword':
      return 'null';
    case 'long':
    case 'date':
      return MISSING_LONG[direction(key)];
    case 'boolean':
      return MISSING_BOOLEAN[direction(key)];
  }
}

/** countBy keys as the embedded adapter (and a terms aggregation's `key_as_string`) show them. */
function bucketKey(type: FieldType, key: unknown): string {
  switch (type) {
    case 'keyword':
    case 'long':
      return String(key);
    case 'boolean':
      return key === true || key === 1 || key === 'true' ? 'true' : 'false';
    case 'date': {
      const date = typeof key === 'number' ? new Date(key) : undefined;
      return date !== undefined && !Number.isNaN(date.getTime()) ? date.toISOString() : String(key);
    }
  }
}
