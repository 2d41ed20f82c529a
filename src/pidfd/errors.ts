/** An `Error` with an errno-style `code`, the form every failure in holdfast takes. */
export function errnoError(code: string, message: string, extra: Record<string, unknown> = {}): NodeJS.ErrnoException {
  const error = new Error(message) as NodeJS.ErrnoException;
  error.code = code;
  Object.assign(error, extra);
  return error;
}

/** True when `error` carries the given errno name. */
export function hasCode(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '');
}
