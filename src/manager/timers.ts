/** Time helpers for the service state machine. `Infinity` means "no timeout", as in unit files. */

/** Resolves with `value`'s result, or with `'timeout'` after `ms` (never, for `Infinity`). */
export function withTimeout<T>(promise: Promise<T>, ms: number, extend?: { deadline: number }): Promise<T | 'timeout'> {
  if (!Number.isFinite(ms)) return promise;
  return new Promise<T | 'timeout'>((resolve, reject) => {
    const state = extend ?? { deadline: Date.now() + ms };
    if (extend !== undefined) state.deadline = Math.max(state.deadline, Date.now() + ms);
    let timer: NodeJS.Timeout;
    const arm = (): void => {
      timer = setTimeout(() => {
        // EXTEND_TIMEOUT_USEC= may have moved the deadline while we slept.
        if (Date.now() + 1 < state.deadline) arm();
        else resolve('timeout');
      }, Math.max(0, state.deadline - Date.now()));
    };
    arm();
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

/** A promise with its resolver, for waits that another event settles. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
