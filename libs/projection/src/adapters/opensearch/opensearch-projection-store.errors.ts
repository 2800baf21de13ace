import { ProjectionError } from '../../projection.errors';

/**
 * Errors only the OpenSearch adapter raises (the embedded store has no network and no server to
 * refuse a request). Same shape as the port's errors: a stable `code`, a message for operators.
 */

/** OpenSearch could not be reached (connection refused or reset, DNS, timeout). Retry later. */
export class OpenSearchUnavailableError extends ProjectionError {
  readonly code = 'store_unavailable';

  constructor(
    /** The node URL without credentials. */
    readonly url: string,
    reason: string,
  ) {
    super(`OpenSearch at ${url} is unreachable: ${reason}`);
  }
}

/** OpenSearch answered, but refused or failed the request (or answered something unexpected). */
export class OpenSearchRequestError extends ProjectionError {
  readonly code = 'store_request_failed';

  constructor(
    readonly operation: string,
    /** HTTP status, when there was one. */
    readonly status: number | undefined,
    reason: string,
  ) {
    super(`OpenSearch ${operation} failed${status === undefined ? '' : ` (HTTP ${status})`}: ${reason}`);
  }
}
