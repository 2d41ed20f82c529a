/** What every `holdfast` verb module exports as its default. */
export interface Command {
  /** The verb as typed, e.g. `process` or `verify`. */
  readonly name: string;
  /** One line for `holdfast --help`. */
  readonly summary: string;
  /** The full help text of the verb, shown by `holdfast VERB --help`. */
  readonly usage: string;
  /** Runs the verb with the arguments after it; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

/** An error meant for the person at the terminal: printed as one line, exits with `exitCode`. */
export class UsageError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
    this.name = 'UsageError';
  }
}
