/** A time helper for the manager's waits outside the unit machines. `Infinity` means "no timeout", as in unit files. */

/** Resolves with `promise`'s result, or with `'timeout'` after `ms` (never, for `Infinity`). */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  if (!Number.isFinite(ms)) return promise;
  return new Promise<T | 'timeout'>((resolve, reject) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
