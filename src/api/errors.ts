/**
 * The API's catalog of coded errors. Every error response is JSON
 * `{ "error": { "code": "GGFS_...", "message": "..." } }` with the status
 * given here. Bad input is always a 4xx; a 5xx means a bug or an outage.
 */
export const API_ERRORS = {
  GGFS_BAD_REQUEST: { status: 400, message: 'the request is malformed' },
  GGFS_BAD_PATH: { status: 400, message: 'the path is not a valid path inside the tree' },
  GGFS_BAD_CURSOR: { status: 400, message: 'the cursor is not a valid feed position' },
  GGFS_BAD_RANGE: { status: 400, message: 'the Range header is malformed' },
  GGFS_RANGE_NOT_SATISFIABLE: { status: 416, message: 'the range is outside the file' },
  GGFS_UNAUTHORIZED: { status: 401, message: 'a valid, unrevoked token is required' },
  GGFS_FORBIDDEN: { status: 403, message: 'this token may not do that' },
  GGFS_NOT_FOUND: { status: 404, message: 'no such file or folder' },
  GGFS_ROUTE_NOT_FOUND: { status: 404, message: 'no such endpoint' },
  GGFS_METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed' },
  GGFS_PRECONDITION_FAILED: { status: 412, message: 'the file changed (ETag differs)' },
  GGFS_PAYLOAD_TOO_LARGE: { status: 413, message: 'the request body is too large' },
  GGFS_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'send application/json' },
  GGFS_THROTTLED: { status: 429, message: 'over this backup node\'s limit; retry after the given time' },
  GGFS_NO_REPLICA: { status: 503, message: 'no reachable node holds the current version' },
  GGFS_UNAVAILABLE: { status: 503, message: 'the metadata database is unreachable' },
  GGFS_INTERNAL: { status: 500, message: 'internal error' },
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  constructor(code: ApiErrorCode, message?: string, headers: Record<string, string> = {}) {
    super(message ?? API_ERRORS[code].message);
    this.name = 'ApiError';
    this.code = code;
    this.statusCode = API_ERRORS[code].status;
    this.headers = headers;
  }
}

export function errorBody(code: ApiErrorCode, message: string): { error: { code: ApiErrorCode; message: string } } {
  return { error: { code, message } };
}
