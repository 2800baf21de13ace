/**
 * Domain and API errors: small classes with a stable numeric `code` (a Herald error code where
 * one exists, else the HTTP status) and the HTTP `status` they map to. One global filter turns
 * them into `{"message","code"}` responses; WebSocket handlers map them to close codes.
 */
export class HeraldError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: number = status,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends HeraldError {
  constructor(message: string, code = 400) {
    super(message, 400, code);
  }
}
export class UnauthorizedError extends HeraldError {
  constructor(message = 'Authentication required') {
    super(message, 401);
  }
}
export class ForbiddenError extends HeraldError {
  constructor(message = 'Forbidden') {
    super(message, 403);
  }
}
export class NotFoundError extends HeraldError {
  constructor(message = 'Not found', code = 404) {
    super(message, 404, code);
  }
}
export class ConflictError extends HeraldError {
  constructor(message: string) {
    super(message, 409);
  }
}
export class PayloadTooLargeError extends HeraldError {
  constructor(message: string) {
    super(message, 413);
  }
}
export class UnavailableError extends HeraldError {
  constructor(message: string) {
    super(message, 503);
  }
}
