/**
 * How projection documents and index definitions look inside OpenSearch.
 *
 * `_source` is the caller's document as JSON, with two changes that make every JSON object
 * storable, whatever its keys:
 * - the document id is added as the keyword field `~id` (sort tiebreaker, filters on `id`);
 * - a key OpenSearch would refuse or misread is escaped, at every level: a key that is empty,
 *   contains a dot (OpenSearch reads `a.b` as the path a → b), or starts with `_` (`_id`,
 *   `_source`, … are metadata fields) or `~` (the escape itself) is stored as `~` + the key with
 *   `%` → `%25` and `.` → `%2E`. Plain keys (`agent`, `action.name` as nested objects) stay as
 *   they are, so dashboards see the documents as written. Decoding reverses it exactly.
 *
 * Declared fields map to explicit properties (everything else is stored, not indexed:
 * `dynamic: false`); a declared field `a.b` is the property `b` of the object `a`, under its
 * escaped path (`_x` → `~_x`). The mapping's properties are the index definition: a reopened
 * store reads them back, and OpenSearch itself merges concurrent additions and refuses type changes.
 */
import type { FieldType } from '../../projection.port';
import { isFieldType, isPlainObject } from '../../projection-rules';

/** The document id in `_source` (a key that escaping never produces). */
export const ID_FIELD = '~id';

/** Marks indices (in the mapping's `_meta`) as created by this store. */
export const STORE_MARKER = { herald: { store: 'projection', format: 1 } } as const;

/**
 * `epoch_millis` first: a JSON number is always epoch milliseconds (never read as a year), then
 * ISO-8601 with `T`, then the same with a space (what the embedded adapter accepts too).
 */
export const DATE_FORMAT =
  'epoch_millis||strict_date_optional_time||' +
  'yyyy-MM-dd HH:mm[:ss[.SSSSSSSSS][.SSSSSSSS][.SSSSSSS][.SSSSSS][.SSSSS][.SSSS][.SSS][.SS][.S]][XXX]';

/** Longer keyword values are stored but not indexed (Lucene refuses terms over 32,766 bytes). */
export const KEYWORD_IGNORE_ABOVE = 8_191;

export interface MappingProperty {
  type?: string;
  properties?: Record<string, MappingProperty>;
  format?: string;
  ignore_malformed?: boolean;
  ignore_above?: number;
}

function needsEscape(key: string): boolean {
  return key === '' || key.includes('.') || key.startsWith('_') || key.startsWith('~');
}

export function escapeKey(key: string): string {
  return needsEscape(key) ? `~${key.replace(/%/g, '%25').replace(/\./g, '%2E')}` : key;
}

export function unescapeKey(key: string): string {
  return key.startsWith('~') ? key.slice(1).replace(/%25|%2E/g, (code) => (code === '%25' ? '%' : '.')) : key;
}

/** Own enumerable property, also for the key `__proto__` (which `object[key] = …` would not create). */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

function mapKeys(value: unknown, rename: (key: string) => string): unknown {
  if (Array.isArray(value)) return value.map((item) => mapKeys(item, rename));
  if (!isPlainObject(value)) return value;
  const result: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) setOwn(result, rename(key), mapKeys(child, rename));
  return result;
}

/** `_source` for a document: `json` is the document as JSON (already validated and serialized). */
export function encodeSource(id: string, json: string): string {
  const escaped = mapKeys(JSON.parse(json), escapeKey);
  return JSON.stringify({ [ID_FIELD]: id, ...(isPlainObject(escaped) ? escaped : {}) });
}

/** The caller's document back from `_source`. */
export function decodeSource(source: Record<string, unknown>): Record<string, unknown> {
  const doc: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(source)) {
    if (key !== ID_FIELD) setOwn(doc, unescapeKey(key), mapKeys(child, unescapeKey));
  }
  return doc;
}

/** The OpenSearch field path of a declared field (or of the built-in `id`). */
export function fieldPath(field: string): string {
  return field === 'id' ? ID_FIELD : field.split('.').map(escapeKey).join('.');
}

function leafProperty(type: FieldType): MappingProperty {
  switch (type) {
    case 'keyword':
      return { type: 'keyword', ignore_above: KEYWORD_IGNORE_ABOVE };
    case 'long':
      // Values are validated on write; malformed ones can only come from documents stored before
      // the field was declared, and read as missing (as in the embedded adapter).
      return { type: 'long', ignore_malformed: true };
    case 'date':
      return { type: 'date', format: DATE_FORMAT, ignore_malformed: true };
    case 'boolean':
      return { type: 'boolean' };
  }
}

/** Mapping properties for declared fields (dotted names become object properties). */
export function mappingProperties(fields: Iterable<[string, FieldType]>): Record<string, MappingProperty> {
  const root: Record<string, MappingProperty> = {};
  for (const [field, type] of fields) {
    const segments = field.split('.').map(escapeKey);
    const leaf = segments.pop();
    if (leaf === undefined) continue;
    let level = root;
    for (const segment of segments) {
      const node: MappingProperty = level[segment] ?? { properties: {} };
      level[segment] = node;
      node.properties ??= {};
      level = node.properties;
    }
    level[leaf] = leafProperty(type);
  }
  return root;
}

/** Declared fields read back from mapping properties (the `~id` field and foreign types left out). */
export function fieldsFromProperties(properties: unknown, prefix = ''): Map<string, FieldType> {
  const fields = new Map<string, FieldType>();
  if (!isPlainObject(properties)) return fields;
  for (const [key, property] of Object.entries(properties)) {
    if ((prefix === '' && key === ID_FIELD) || !isPlainObject(property)) continue;
    const name = `${prefix}${unescapeKey(key)}`;
    if (isPlainObject(property.properties)) {
      for (const [child, type] of fieldsFromProperties(property.properties, `${name}.`)) fields.set(child, type);
    } else if (isFieldType(property.type)) {
      fields.set(name, property.type);
    }
  }
  return fields;
}

/**
 * A field that OpenSearch would need to map as both a value and an object (`action` and
 * `action.name`), as `[value field, object field]`, or undefined.
 */
export function pathClash(fields: Iterable<string>): [string, string] | undefined {
  // Sorted, a name's object sub-fields directly follow it (no identifier character sorts before '.').
  const names = [...fields].sort();
  for (let i = 0; i + 1 < names.length; i++) {
    const [current, next] = [names[i], names[i + 1]];
    if (current !== undefined && next?.startsWith(`${current}.`)) return [current, next];
  }
  return undefined;
}
