/**
 * The port's input rules (names, field definitions, values, watermarks, cursors), shared by
 * every ProjectionStore adapter so that all accept and reject exactly the same input with the
 * same messages.
 */
import {
  InvalidDocumentError,
  InvalidCursorError,
  InvalidIndexDefinitionError,
  InvalidIndexNameError,
  InvalidWatermarkError,
} from './projection.errors';
import type { DocumentWrite, FieldType, Watermark } from './projection.port';

export const DEFAULT_QUERY_LIMIT = 100;
export const MAX_QUERY_LIMIT = 10_000;

const INDEX_NAME = /^[a-z0-9][a-z0-9._-]*$/;
const INDEX_PREFIX = /^[a-z0-9._-]*$/;
const MAX_INDEX_NAME_LENGTH = 200;
/** Identifier segments joined by dots; a dotted name addresses a nested object field. */
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const FIELD_TYPES: ReadonlySet<string> = new Set<FieldType>(['keyword', 'long', 'date', 'boolean']);
/** OpenSearch's default `strict_date_optional_time` (no zone means UTC), plus a space for the `T`. */
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?$/;
const CURSOR_TEXT = /^[A-Za-z0-9_-]+$/;
/** OpenSearch's limit on `_id`. */
export const MAX_ID_BYTES = 512;

/** `id` is the built-in document id; it can be filtered and sorted on like a keyword. */
export type KeyType = FieldType | 'id';
export type CursorValue = string | number | null;

export interface SortKey {
  /** As written by the caller, without `-` (`id` for the tiebreaker). */
  field: string;
  type: KeyType;
  descending: boolean;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isFieldType(value: unknown): value is FieldType {
  return typeof value === 'string' && FIELD_TYPES.has(value);
}

export function validateIndexPrefix(prefix: string): void {
  if (typeof prefix !== 'string' || !INDEX_PREFIX.test(prefix)) {
    throw new InvalidIndexNameError(String(prefix), 'the index prefix may contain only a-z, 0-9, ".", "_" and "-"');
  }
}

export function validateIndexName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !INDEX_NAME.test(name)) {
    throw new InvalidIndexNameError(
      String(name),
      'use lowercase a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
    );
  }
  if (name.length > MAX_INDEX_NAME_LENGTH) {
    throw new InvalidIndexNameError(name, `longer than ${MAX_INDEX_NAME_LENGTH} characters`);
  }
}

export function validateFieldDefinition(index: string, field: string, type: unknown): asserts type is FieldType {
  if (field === 'id') {
    throw new InvalidIndexDefinitionError(index, 'field "id" is built in (the document id); do not declare it');
  }
  if (!FIELD_NAME.test(field)) {
    throw new InvalidIndexDefinitionError(
      index,
      `field name "${field}" must be identifiers (letters, digits, "_") separated by dots`,
    );
  }
  if (!isFieldType(type)) {
    throw new InvalidIndexDefinitionError(
      index,
      `field "${field}" has unknown type ${JSON.stringify(type)} (use ${[...FIELD_TYPES].join(', ')})`,
    );
  }
}

export function validateWatermark(watermark: Watermark): Record<string, number> {
  if (typeof watermark !== 'object' || watermark === null) throw new InvalidWatermarkError('not an object');
  if (typeof watermark.name !== 'string' || watermark.name.length === 0) {
    throw new InvalidWatermarkError('name must be a non-empty string');
  }
  if (!isPlainObject(watermark.positions)) {
    throw new InvalidWatermarkError(`positions of "${watermark.name}" must be an object`);
  }
  for (const [partition, offset] of Object.entries(watermark.positions)) {
    if (typeof offset !== 'number' || !Number.isFinite(offset)) {
      throw new InvalidWatermarkError(`position of partition "${partition}" of "${watermark.name}" is not a number`);
    }
  }
  return watermark.positions;
}

/** Why a declared field's value does not fit its type, or undefined when it does. */
export function checkFieldValue(doc: Record<string, unknown>, field: string, type: FieldType): string | undefined {
  let value: unknown = doc;
  for (const segment of field.split('.')) {
    if (value === undefined || value === null) return undefined;
    if (!isPlainObject(value)) return 'is nested in a value that is not an object';
    value = value[segment];
  }
  if (value === undefined || value === null) return undefined;
  switch (type) {
    case 'keyword':
      return typeof value === 'string' ? undefined : 'must be a string (keyword)';
    case 'long':
      return Number.isSafeInteger(value) ? undefined : 'must be a safe integer (long)';
    case 'boolean':
      return typeof value === 'boolean' ? undefined : 'must be a boolean';
    case 'date':
      return Number.isSafeInteger(value) || (typeof value === 'string' && ISO_DATE.test(value))
        ? undefined
        : 'must be an ISO-8601 date string or epoch milliseconds (date)';
  }
}

/**
 * Epoch milliseconds of an ISO-8601 text of the accepted form (no zone means UTC, fractions
 * beyond milliseconds are truncated as OpenSearch does), or undefined when it is no date-time
 * (month 13, day 32, hour 24, more than 9 fraction digits, offset beyond ±18:00). Like SQLite's
 * julianday (the embedded adapter), a day past the month's end rolls over (02-30 is 03-02).
 */
export function isoDateMillis(text: string): number | undefined {
  const match = ISO_DATE.exec(text);
  if (!match) return undefined;
  const [, year, month, day, hour = '0', minute = '0', second = '0', fraction = '', zone = 'Z'] = match;
  const parts = [year, month, day, hour, minute, second].map(Number);
  const [y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0] = parts;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59 || fraction.length > 9) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, Number(`${fraction}000`.slice(0, 3)));
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const zoneHours = Number(zone.slice(1, 3));
    const zoneMinutes = Number(zone.slice(4, 6));
    if (zoneHours > 18 || zoneMinutes > 59 || zoneHours * 60 + zoneMinutes > 18 * 60) return undefined;
    offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (zoneHours * 60 + zoneMinutes);
  }
  return date.getTime() - offsetMinutes * 60_000;
}

/** The sort as a cursor carries it, e.g. `status,-seq,id`. */
export function sortSpec(sort: SortKey[]): string {
  return sort.map((key) => (key.descending ? `-${key.field}` : key.field)).join(',');
}

/**
 * Cursor = base64url JSON `{ s: sortSpec, v: sortValuesOfTheLastItem }`, the same format as the
 * embedded adapter's (dates as epoch milliseconds, booleans as 0/1, missing values as null).
 */
export function encodeCursor(spec: string, values: CursorValue[]): string {
  return Buffer.from(JSON.stringify({ s: spec, v: values }), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string, spec: string, sort: SortKey[]): CursorValue[] {
  if (typeof cursor !== 'string' || !CURSOR_TEXT.test(cursor)) throw new InvalidCursorError('not base64url text');
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError('not a cursor of this store');
  }
  if (!isPlainObject(payload) || typeof payload.s !== 'string' || !Array.isArray(payload.v)) {
    throw new InvalidCursorError('not a cursor of this store');
  }
  if (payload.s !== spec) {
    throw new InvalidCursorError(`it belongs to sort "${payload.s}", not "${spec}"`);
  }
  const values: unknown[] = payload.v;
  if (values.length !== sort.length) throw new InvalidCursorError('wrong number of sort values');
  return sort.map((key, i): CursorValue => {
    const value = values[i];
    if (key.type === 'id' && typeof value === 'string') return value;
    if (key.type !== 'id' && value === null) return null;
    if (key.type === 'keyword' && typeof value === 'string') return value;
    if (key.type !== 'id' && key.type !== 'keyword' && typeof value === 'number' && Number.isSafeInteger(value)) {
      return value;
    }
    throw new InvalidCursorError(`bad value for sort field "${key.field}"`);
  });
}

/**
 * Checks one write against its index's declared fields; returns its id, version and the
 * document as JSON text. Every adapter validates a whole apply this way before writing anything.
 */
export function validateDocumentWrite(
  index: string,
  fields: ReadonlyMap<string, FieldType>,
  write: DocumentWrite,
): { id: string; version: number; json: string } {
  const { id, version, doc } = write;
  if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id) > MAX_ID_BYTES) {
    throw new InvalidDocumentError(index, String(id), `id must be a non-empty string of at most ${MAX_ID_BYTES} bytes`);
  }
  if (!Number.isSafeInteger(version) || version < 0) {
    throw new InvalidDocumentError(index, id, `version must be a non-negative safe integer, got ${String(version)}`);
  }
  if (!isPlainObject(doc)) throw new InvalidDocumentError(index, id, 'doc must be a JSON object');
  for (const [field, type] of fields) {
    const problem = checkFieldValue(doc, field, type);
    if (problem !== undefined) throw new InvalidDocumentError(index, id, `field "${field}" ${problem}`);
  }
  try {
    return { id, version, json: JSON.stringify(doc) };
  } catch (error) {
    throw new InvalidDocumentError(index, id, `doc is not serializable to JSON: ${(error as Error).message}`);
  }
}
