/** Errors the authentication route maps to answers (with Retry-After where given). */
export class KeyRequestBusyError extends Error {
  readonly code = 'key_request_busy';
  constructor(readonly retryAfterSeconds: number) {
    super('Key request queue is full; retry later');
  }
}

export class KeyRequestRateLimitedError extends Error {
  readonly code = 'key_request_rate_limited';
  constructor(readonly retryAfterSeconds: number) {
    super('Too many key requests from this address; retry later');
  }
}

export class KeyRequestConfigError extends Error {
  readonly code = 'key_request_config_invalid';
}
