import Database from 'better-sqlite3';
import {
  validateDocumentWrite,
  decodeCursor,
  DEFAULT_QUERY_LIMIT,
  encodeCursor,
  MAX_QUERY_LIMIT,
  validateFieldDefinition,
  validateIndexName,
  validateWatermark,
  type KeyType,
  type SortKey as RuleSortKey,
} from '../../projection-rules';
import {
  IndexDefinitionConflictError,
  IndexNotFoundError,
  InvalidFilterError,
  InvalidIndexNameError,
  InvalidQueryError,
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

export interface SqliteProjectionStoreOptions {
  /** Database file (created if missing). `:memory:` works for throwaway stores. */
  path: string;
  /** Prepended to every index name (like an OpenSearch index prefix), e.g. `herald.`. */
  indexPrefix?: string;
}

export const PROJECTION_DEFAULT_QUERY_LIMIT = DEFAULT_QUERY_LIMIT;
export const PROJECTION_MAX_QUERY_LIMIT = MAX_QUERY_LIMIT;

/** Identifier segments joined by dots; a dotted name addresses a nested object field. */
/** OpenSearch's default `strict_date_optional_time` (no zone means UTC). */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?$/;
/** OpenSearch's limit on `_id`. */
const STATEMENT_CACHE_SIZE = 256;

type SqlValue = string | number | null;
/** `id` is the built-in document id; it can be filtered and sorted on like a keyword. */

interface IndexState {
  name: string;
  table: string;
  fields: Map<string, FieldType>;
}

/** A sort key with the SQL column it reads. */
interface SortKey extends RuleSortKey {
  column: string;
}

interface DocumentRow {
  id: string;
  version: number;
  doc: string;
}

interface PreparedWrite {
  index: IndexState;
  params: { id: string; version: number; doc: string };
}

interface WhereClause {
  sql: string;
  params: SqlValue[];
}

/**
 * Embedded ProjectionStore on one SQLite file (WAL, synchronous=FULL).
 *
 * Layout, for a prefix `p`:
 * - one table per index, named `p<index>`: `id TEXT PRIMARY KEY, version INTEGER, doc TEXT`
 *   (the document as JSON); every declared field is a VIRTUAL generated column `"f:<field>"`
 *   computed from `json_extract(doc, '$.<field>')` with an index on (column, id), so filters,
 *   sorts, search_after cursors and counts on declared fields are index-backed. Dates are
 *   normalized to epoch milliseconds, booleans to 0/1, as OpenSearch does;
 * - `p:indices` holds each index's declared fields (the "mapping"), so a store reopened on the
 *   same file knows its indices without calling `ensureIndices`;
 * - `p:watermarks` holds one row per projection name with its per-partition positions (JSON).
 *
 * Semantics follow OpenSearch so the OpenSearch adapter passes the same contract: external
 * versioning (a write wins only with a strictly greater version), term/terms/range filters,
 * sort with missing values last in both directions and `id` as the final tiebreaker,
 * search_after cursors, and countBy as a terms aggregation (documents missing the field are
 * not counted; keys are strings: `true`/`false` for booleans, ISO-8601 for dates).
 *
 * Values of declared fields are validated on write (keyword: string, long: safe integer,
 * date: ISO-8601 string or epoch-millisecond integer, boolean: boolean; null or missing is
 * allowed). Arrays (multi-valued fields) are rejected. A value stored before its field was
 * declared and of the wrong type reads as missing (like `ignore_malformed`).
 *
 * better-sqlite3 is synchronous: when a method's promise resolves, its effect is committed and
 * visible to every connection on the file.
 */
export class SqliteProjectionStoreAdapter implements ProjectionStore {
  private readonly db: Database.Database;
  private readonly prefix: string;
  private readonly indicesTable: string;
  private readonly watermarksTable: string;
  private readonly indices = new Map<string, IndexState>();
  private readonly statements = new Map<string, Database.Statement<SqlValue[], unknown>>();
  private closed = false;

  constructor(options: SqliteProjectionStoreOptions) {
    this.prefix = options.indexPrefix ?? '';
    if (!/^[a-z0-9._-]*$/.test(this.prefix)) {
      throw new InvalidIndexNameError(this.prefix, 'the index prefix may contain only a-z, 0-9, ".", "_" and "-"');
    }
    // `:` and `#` never occur in index names or prefixes, so meta tables, index tables and
    // SQL index names cannot collide, even for stores with different prefixes in one file.
    this.indicesTable = `${this.prefix}:indices`;
    this.watermarksTable = `${this.prefix}:watermarks`;
    this.db = new Database(options.path);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.pragma('busy_timeout = 5000');
      this.db.exec(
        `CREATE TABLE IF NOT EXISTS ${quote(this.indicesTable)} (name TEXT PRIMARY KEY NOT NULL, fields TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS ${quote(this.watermarksTable)} (name TEXT PRIMARY KEY NOT NULL, positions TEXT NOT NULL);`,
      );
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  ensureIndices(definitions: IndexDefinition[]): Promise<void> {
    return this.run(() => {
      const wanted = new Map<string, Map<string, FieldType>>();
      for (const definition of definitions) {
        validateIndexName(definition.name);
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

      const changed = this.db
        .transaction(() => {
          const result: IndexState[] = [];
          for (const [name, fields] of wanted) {
            const existing = this.readIndex(name);
            const table = this.tableName(name);
            if (!existing) {
              this.db.exec(
                `CREATE TABLE ${quote(table)} (id TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL)`,
              );
            }
            const merged = new Map(existing?.fields ?? []);
            for (const [field, type] of fields) {
              const current = merged.get(field);
              if (current === type) continue;
              if (current !== undefined) throw new IndexDefinitionConflictError(name, field, current, type);
              this.db.exec(
                `ALTER TABLE ${quote(table)} ADD COLUMN ${quote(fieldColumn(field))} ${sqlType(type)} ` +
                  `GENERATED ALWAYS AS (${fieldExpression(field, type)}) VIRTUAL;
                 CREATE INDEX IF NOT EXISTS ${quote(`${table}#${field}`)} ON ${quote(table)} (${quote(fieldColumn(field))}, id);`,
              );
              merged.set(field, type);
            }
            if (!existing || merged.size !== existing.fields.size) {
              this.db
                .prepare(
                  `INSERT INTO ${quote(this.indicesTable)} (name, fields) VALUES (?, ?)
                   ON CONFLICT(name) DO UPDATE SET fields = excluded.fields`,
                )
                .run(name, JSON.stringify(Object.fromEntries(merged)));
            }
            result.push({ name, table, fields: merged });
          }
          return result;
        })
        .immediate();
      for (const state of changed) this.indices.set(state.name, state);
    });
  }

  apply(writes: DocumentWrite[], watermark?: Watermark): Promise<void> {
    return this.run(() => {
      // Validate everything first: an apply is all or nothing, and its watermark is stored only
      // together with (after) its documents.
      const prepared = writes.map((write) => this.prepareWrite(write));
      const positions = watermark === undefined ? undefined : validateWatermark(watermark);
      if (prepared.length === 0 && positions === undefined) return;

      this.db
        .transaction(() => {
          for (const { index, params } of prepared) {
            this.statement(
              `INSERT INTO ${quote(index.table)} (id, version, doc) VALUES (?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET version = excluded.version, doc = excluded.doc
               WHERE excluded.version > ${quote(index.table)}.version`,
            ).run(params.id, params.version, params.doc);
          }
          if (watermark !== undefined && positions !== undefined) {
            const row = this.statement(`SELECT positions FROM ${quote(this.watermarksTable)} WHERE name = ?`).get(
              watermark.name,
            ) as { positions: string } | undefined;
            const merged: Record<string, number> = row ? (JSON.parse(row.positions) as Record<string, number>) : {};
            for (const [partition, offset] of Object.entries(positions)) {
              const stored = merged[partition];
              if (stored === undefined || offset > stored) merged[partition] = offset;
            }
            this.statement(
              `INSERT INTO ${quote(this.watermarksTable)} (name, positions) VALUES (?, ?)
               ON CONFLICT(name) DO UPDATE SET positions = excluded.positions`,
            ).run(watermark.name, JSON.stringify(merged));
          }
        })
        .immediate();
    });
  }

  get<T = Record<string, unknown>>(index: string, id: string): Promise<StoredDocument<T> | undefined> {
    return this.run(() => {
      const state = this.index(index);
      const row = this.statement(`SELECT id, version, doc FROM ${quote(state.table)} WHERE id = ?`).get(id) as
        | DocumentRow
        | undefined;
      return row ? toStoredDocument<T>(row) : undefined;
    });
  }

  query<T = Record<string, unknown>>(index: string, options: QueryOptions = {}): Promise<QueryPage<T>> {
    return this.run(() => {
      const state = this.index(index);
      const limit = options.limit ?? PROJECTION_DEFAULT_QUERY_LIMIT;
      if (!Number.isInteger(limit) || limit < 1 || limit > PROJECTION_MAX_QUERY_LIMIT) {
        throw new InvalidQueryError(
          `limit must be an integer from 1 to ${PROJECTION_MAX_QUERY_LIMIT}, got ${String(limit)}`,
        );
      }
      const sort = this.sortKeys(state, options.sort ?? []);
      const sortSpec = sort.map((key) => (key.descending ? `-${key.field}` : key.field)).join(',');
      const where = this.where(state, options.filter);
      if (options.cursor !== undefined) {
        const after = decodeCursor(options.cursor, sortSpec, sort);
        const keyset = searchAfter(sort, after);
        where.sql = `(${where.sql}) AND ${keyset.sql}`;
        where.params.push(...keyset.params);
      }
      const selectSort = sort.map((key, i) => `${key.column} AS s${i}`).join(', ');
      const orderBy = sort.map((key) => `${key.column} ${key.descending ? 'DESC' : 'ASC'} NULLS LAST`).join(', ');
      const rows = this.statement(
        `SELECT id, version, doc, ${selectSort} FROM ${quote(state.table)} WHERE ${where.sql} ORDER BY ${orderBy} LIMIT ?`,
      ).all(...where.params, limit + 1) as Array<DocumentRow & Record<string, SqlValue>>;

      // One extra row tells whether another page exists, so `nextCursor` is never a dead end.
      const hasMore = rows.length > limit;
      const pageRows = hasMore ? rows.slice(0, limit) : rows;
      const page: QueryPage<T> = { items: pageRows.map((row) => toStoredDocument<T>(row)) };
      const last = pageRows[pageRows.length - 1];
      if (hasMore && last !== undefined) {
        page.nextCursor = encodeCursor(
          sortSpec,
          sort.map((_, i) => last[`s${i}`] ?? null),
        );
      }
      return page;
    });
  }

  count(index: string, filter?: Filter): Promise<number> {
    return this.run(() => {
      const state = this.index(index);
      const where = this.where(state, filter);
      const row = this.statement(`SELECT count(*) AS n FROM ${quote(state.table)} WHERE ${where.sql}`).get(
        ...where.params,
      ) as { n: number };
      return row.n;
    });
  }

  countBy(index: string, field: string, filter?: Filter): Promise<Record<string, number>> {
    return this.run(() => {
      const state = this.index(index);
      const type = this.fieldType(state, field, 'countBy');
      const where = this.where(state, filter);
      const column = quote(fieldColumn(field));
      const rows = this.statement(
        `SELECT ${column} AS k, count(*) AS n FROM ${quote(state.table)}
         WHERE (${where.sql}) AND ${column} IS NOT NULL GROUP BY ${column} ORDER BY n DESC, k ASC`,
      ).all(...where.params) as Array<{ k: string | number; n: number }>;
      const counts: Record<string, number> = {};
      for (const row of rows) counts[bucketKey(type, row.k)] = row.n;
      return counts;
    });
  }

  getWatermark(name: string): Promise<Watermark | undefined> {
    return this.run(() => {
      const row = this.statement(`SELECT positions FROM ${quote(this.watermarksTable)} WHERE name = ?`).get(name) as
        | { positions: string }
        | undefined;
      return row ? { name, positions: JSON.parse(row.positions) as Record<string, number> } : undefined;
    });
  }

  /**
   * Deletes every document of the given indices (which stay defined, so writes need no new
   * `ensureIndices`) and every watermark of this store. Indices that do not exist are skipped.
   */
  reset(indices: string[]): Promise<void> {
    return this.run(() => {
      indices.forEach(validateIndexName);
      const existing = indices.flatMap((name) => {
        const state = this.indices.get(name) ?? this.readIndex(name);
        return state ? [state] : [];
      });
      this.db
        .transaction(() => {
          for (const state of existing) this.db.exec(`DELETE FROM ${quote(state.table)}`);
          this.db.exec(`DELETE FROM ${quote(this.watermarksTable)}`);
        })
        .immediate();
    });
  }

  /** Closes the database; idempotent. Any later call rejects with `store_closed`. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.statements.clear();
      this.db.close();
    }
    return Promise.resolve();
  }

  /**
   * Runs synchronous SQLite work as the port's promise: a throw becomes a rejection, and the
   * promise resolves only after the work (and its commit) is done.
   */
  private run<T>(work: () => T): Promise<T> {
    try {
      this.assertOpen();
      return Promise.resolve(work());
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new ProjectionStoreClosedError();
  }

  private tableName(index: string): string {
    return `${this.prefix}${index}`;
  }

  /** The index's state; reloaded from the file on a miss (another process may have created it). */
  private index(name: string, refresh = false): IndexState {
    validateIndexName(name);
    const cached = refresh ? undefined : this.indices.get(name);
    if (cached) return cached;
    const state = this.readIndex(name);
    if (!state) throw new IndexNotFoundError(name);
    this.indices.set(name, state);
    return state;
  }

  private readIndex(name: string): IndexState | undefined {
    const row = this.statement(`SELECT fields FROM ${quote(this.indicesTable)} WHERE name = ?`).get(name) as
      | { fields: string }
      | undefined;
    if (!row) return undefined;
    const fields = new Map(Object.entries(JSON.parse(row.fields) as Record<string, FieldType>));
    return { name, table: this.tableName(name), fields };
  }

  private fieldType(state: IndexState, field: string, usage: 'filter' | 'sort' | 'countBy'): FieldType {
    const type = state.fields.get(field) ?? this.index(state.name, true).fields.get(field);
    if (type === undefined) throw new UnknownFieldError(state.name, field, usage);
    return type;
  }

  private statement(sql: string): Database.Statement<SqlValue[], unknown> {
    let statement = this.statements.get(sql);
    if (!statement) {
      if (this.statements.size >= STATEMENT_CACHE_SIZE) this.statements.clear();
      statement = this.db.prepare<SqlValue[], unknown>(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private prepareWrite(write: DocumentWrite): PreparedWrite {
    const index = this.index(write.index);
    const { id, version, json } = validateDocumentWrite(index.name, index.fields, write);
    return { index, params: { id, version, doc: json } };
  }

  private sortKeys(state: IndexState, sort: string[]): SortKey[] {
    if (!Array.isArray(sort)) throw new InvalidQueryError('sort must be an array of field names');
    const keys: SortKey[] = [];
    for (const entry of sort) {
      if (typeof entry !== 'string' || entry === '' || entry === '-') {
        throw new InvalidQueryError(`invalid sort entry ${JSON.stringify(entry)}: use "field" or "-field"`);
      }
      const descending = entry.startsWith('-');
      const field = descending ? entry.slice(1) : entry;
      if (field === 'id') {
        keys.push({ field, column: 'id', type: 'id', descending });
        return keys; // `id` is unique: later keys could never matter.
      }
      const type = this.fieldType(state, field, 'sort');
      keys.push({ field, column: quote(fieldColumn(field)), type, descending });
    }
    keys.push({ field: 'id', column: 'id', type: 'id', descending: false });
    return keys;
  }

  private where(state: IndexState, filter: Filter | undefined): WhereClause {
    const clauses: string[] = [];
    const params: SqlValue[] = [];
    if (filter !== undefined && (typeof filter !== 'object' || filter === null || Array.isArray(filter))) {
      throw new InvalidFilterError(state.name, '*', 'a filter must be an object of field conditions');
    }
    for (const [field, condition] of Object.entries(filter ?? {})) {
      const type: KeyType = field === 'id' ? 'id' : this.fieldType(state, field, 'filter');
      const column = field === 'id' ? 'id' : quote(fieldColumn(field));
      const key = (value: unknown): string | number => this.filterKey(state.name, field, type, value);
      if (condition === undefined || condition === null) {
        throw new InvalidFilterError(state.name, field, 'the condition is missing (undefined or null)');
      } else if (Array.isArray(condition)) {
        // terms: any of the values; an empty list matches nothing (as in OpenSearch).
        if (condition.length === 0) {
          clauses.push('0');
        } else {
          clauses.push(`${column} IN (SELECT value FROM json_each(?))`);
          params.push(JSON.stringify(condition.map(key)));
        }
      } else if (typeof condition === 'object') {
        const bounds = Object.entries(condition);
        if (bounds.length === 0) clauses.push(`${column} IS NOT NULL`);
        for (const [operator, bound] of bounds) {
          const sqlOperator = RANGE_OPERATORS[operator];
          if (sqlOperator === undefined) {
            throw new InvalidFilterError(
              state.name,
              field,
              `unknown range operator "${operator}" (use gt, gte, lt, lte)`,
            );
          }
          if (bound === undefined) continue;
          clauses.push(`${column} ${sqlOperator} ?`);
          params.push(key(bound));
        }
      } else {
        clauses.push(`${column} = ?`);
        params.push(key(condition));
      }
    }
    return { sql: clauses.length > 0 ? clauses.join(' AND ') : '1', params };
  }

  /** A filter value converted to the form stored in the field's column. */
  private filterKey(index: string, field: string, type: KeyType, value: unknown): string | number {
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
        if (value === true || value === 'true') return 1;
        if (value === false || value === 'false') return 0;
        return fail('is not a boolean');
      case 'date': {
        if (typeof value === 'number' && Number.isFinite(value)) return value;
        const millis = typeof value === 'string' && ISO_DATE.test(value) ? this.dateMillis(value) : null;
        return millis ?? fail('is not an ISO-8601 date or epoch milliseconds');
      }
    }
  }

  /** Epoch milliseconds of an ISO-8601 text, computed exactly like the generated date columns. */
  private dateMillis(text: string): number | null {
    const row = this.statement(`SELECT ${isoToMillis('?')} AS ms`).get(text) as { ms: number | null };
    return row.ms;
  }
}

const RANGE_OPERATORS: Readonly<Record<string, string>> = { gt: '>', gte: '>=', lt: '<', lte: '<=' };

function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}

function fieldColumn(field: string): string {
  return `f:${field}`;
}

function sqlType(type: FieldType): string {
  return type === 'keyword' ? 'TEXT' : 'INTEGER';
}

function isoToMillis(textSql: string): string {
  return `CAST(round((julianday(${textSql}) - 2440587.5) * 86400000.0) AS INTEGER)`;
}

/** The generated column: the JSON value if it has the field's type, else NULL (missing). */
function fieldExpression(field: string, type: FieldType): string {
  const path = `'$.${field}'`;
  const value = `json_extract(doc, ${path})`;
  const jsonType = `json_type(doc, ${path})`;
  switch (type) {
    case 'keyword':
      return `CASE ${jsonType} WHEN 'text' THEN ${value} END`;
    case 'long':
      return `CASE ${jsonType} WHEN 'integer' THEN ${value} END`;
    case 'boolean':
      return `CASE ${jsonType} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END`;
    case 'date':
      return `CASE ${jsonType} WHEN 'integer' THEN ${value} WHEN 'text' THEN ${isoToMillis(value)} END`;
  }
}

function toStoredDocument<T>(row: DocumentRow): StoredDocument<T> {
  return { id: row.id, version: row.version, doc: JSON.parse(row.doc) as T };
}

/** The bucket key of a terms aggregation, as OpenSearch's `key_as_string` would show it. */
function bucketKey(type: FieldType, key: string | number): string {
  switch (type) {
    case 'keyword':
    case 'long':
      return String(key);
    case 'boolean':
      return key === 1 ? 'true' : 'false';
    case 'date': {
      const date = new Date(Number(key));
      return Number.isNaN(date.getTime()) ? String(key) : date.toISOString();
    }
  }
}

/**
 * search_after as SQL: rows strictly after `after` in the order (key1, key2, …, id) where each
 * key sorts ascending or descending with NULLs (missing values) last in both directions.
 */
function searchAfter(sort: SortKey[], after: SqlValue[]): WhereClause {
  const alternatives: string[] = [];
  const params: SqlValue[] = [];
  sort.forEach((key, k) => {
    const value = after[k] ?? null;
    if (value === null) return; // nothing sorts after a missing value on this key
    const parts: string[] = [];
    const partParams: SqlValue[] = [];
    for (let j = 0; j < k; j++) {
      const previous = sort[j];
      const equal = after[j] ?? null;
      if (!previous) continue;
      if (equal === null) {
        parts.push(`${previous.column} IS NULL`);
      } else {
        parts.push(`${previous.column} = ?`);
        partParams.push(equal);
      }
    }
    const operator = key.descending ? '<' : '>';
    parts.push(key.type === 'id' ? `id ${operator} ?` : `(${key.column} ${operator} ? OR ${key.column} IS NULL)`);
    partParams.push(value);
    alternatives.push(`(${parts.join(' AND ')})`);
    params.push(...partParams);
  });
  return { sql: alternatives.length > 0 ? `(${alternatives.join(' OR ')})` : '0', params };
}
