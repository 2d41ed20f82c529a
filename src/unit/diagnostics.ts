/** How bad a problem is: an `error` keeps the unit from loading; the others are advice. */
export type Severity = 'error' | 'warning' | 'notice';

/**
 * One problem found in a unit file or in something it refers to.
 *
 * `line` is 1-based and names the line an assignment starts on (a value continued over several
 * lines with a trailing `\` is reported at its first line). It is 0 only for problems that are
 * not about any line of any file, such as a unit that cannot be found; `file` is then the unit name.
 */
export interface Diagnostic {
  readonly file: string;
  readonly line: number;
  readonly severity: Severity;
  /** The directive concerned, e.g. `ExecStart`, when there is one. */
  readonly key?: string;
  readonly message: string;
}

/** `FILE:LINE: message`, the form compilers and `systemd-analyze verify` use; `FILE: message` for line 0. */
export function formatDiagnostic(d: Diagnostic): string {
  return d.line > 0 ? `${d.file}:${d.line}: ${d.message}` : `${d.file}: ${d.message}`;
}

/** True when any diagnostic is an error. */
export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

const MAX_MESSAGE = 1000;

/** Collects diagnostics for one file, so callers need not repeat the file name. */
export class DiagnosticSink {
  readonly list: Diagnostic[] = [];

  constructor(public file: string) {}

  add(severity: Severity, line: number, text: string, key?: string): void {
    // A pathological value (a megabyte on one line) must not make a megabyte of log.
    const message = text.length > MAX_MESSAGE ? text.slice(0, MAX_MESSAGE) + '…' : text;
    this.list.push(key === undefined ? { file: this.file, line, severity, message } : { file: this.file, line, severity, key, message });
  }

  error(line: number, message: string, key?: string): void {
    this.add('error', line, message, key);
  }

  warning(line: number, message: string, key?: string): void {
    this.add('warning', line, message, key);
  }

  notice(line: number, message: string, key?: string): void {
    this.add('notice', line, message, key);
  }
}
