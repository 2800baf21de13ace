/**
 * Errors raised by every ProjectionStore adapter. Each has a stable `code` so callers (and the
 * global error filter) can map them without matching messages; the contract suite checks codes.
 */

export abstract class ProjectionError extends Error {
  abstract readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** An index name (or index prefix) is not `[a-z0-9][a-z0-9._-]*` (OpenSearch-compatible). */
export class InvalidIndexNameError extends ProjectionError {
  readonly code = 'invalid_index_name';

  constructor(
    readonly index: string,
    reason: string,
  ) {
    super(`invalid index name "${index}": ${reason}`);
  }
}

/** An index definition is malformed (bad field name or type). */
export class InvalidIndexDefinitionError extends ProjectionError {
  readonly code = 'invalid_index_definition';

  constructor(
    readonly index: string,
    reason: string,
  ) {
    super(`invalid definition of index "${index}": ${reason}`);
  }
}

/** `ensureIndices` tried to change the type of an already declared field. */
export class IndexDefinitionConflictError extends ProjectionError {
  readonly code = 'index_definition_conflict';

  constructor(
    readonly index: string,
    readonly field: string,
    readonly existingType: string,
    readonly requestedType: string,
  ) {
    super(`index "${index}": field "${field}" is declared as ${existingType}, cannot change it to ${requestedType}`);
  }
}

/** The index was never created with `ensureIndices`. */
export class IndexNotFoundError extends ProjectionError {
  readonly code = 'index_not_found';

  constructor(readonly index: string) {
    super(`index "${index}" does not exist (call ensureIndices first)`);
  }
}

/** A filter, sort or countBy names a field that the index does not declare. */
export class UnknownFieldError extends ProjectionError {
  readonly code = 'unknown_field';

  constructor(
    readonly index: string,
    readonly field: string,
    readonly usage: 'filter' | 'sort' | 'countBy',
  ) {
    super(`index "${index}" has no declared field "${field}" to ${usage === 'countBy' ? 'count by' : usage} on`);
  }
}

/** A filter value cannot be used for the field's type (or the filter shape is wrong). */
export class InvalidFilterError extends ProjectionError {
  readonly code = 'invalid_filter';

  constructor(
    readonly index: string,
    readonly field: string,
    reason: string,
  ) {
    super(`invalid filter on "${index}.${field}": ${reason}`);
  }
}

/** Bad query options other than the filter and the cursor (limit, sort syntax). */
export class InvalidQueryError extends ProjectionError {
  readonly code = 'invalid_query';
}

/** A cursor that this store did not produce for this sort (or that was tampered with). */
export class InvalidCursorError extends ProjectionError {
  readonly code = 'invalid_cursor';

  constructor(reason: string) {
    super(`invalid cursor: ${reason}`);
  }
}

/** A write is malformed: bad id/version, or a declared field holds a value of the wrong type. */
export class InvalidDocumentError extends ProjectionError {
  readonly code = 'invalid_document';

  constructor(
    readonly index: string,
    readonly id: string,
    reason: string,
  ) {
    super(`invalid document "${id}" for index "${index}": ${reason}`);
  }
}

/** A watermark is malformed (empty name, non-numeric position). */
export class InvalidWatermarkError extends ProjectionError {
  readonly code = 'invalid_watermark';

  constructor(reason: string) {
    super(`invalid watermark: ${reason}`);
  }
}

/** The store was closed; it cannot be used any more. */
export class ProjectionStoreClosedError extends ProjectionError {
  readonly code = 'store_closed';

  constructor() {
    super('the projection store is closed');
  }
}
