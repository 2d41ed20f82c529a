/**
 * `$VAR` expansion in command lines at exec time, with the final environment (so `$MAINPID` works).
 * The rules are systemd's `replace_env_argv()` without the braceless and `${A:-b}` extensions.
 */

import { DEFAULT_SHELL, type ExecCommand } from './exec-line.js';
import { WordReader } from './words.js';

/** An environment as the spawner holds it; `undefined` values count as unset. */
export type Environment = Readonly<Record<string, string | undefined>>;

/** What {@link expandExecArgsDetailed} produced, with the names that expanded to nothing. */
export interface ExpandResult {
  readonly argv: string[];
  /** Valid names that were not set (systemd logs "Referenced but unset environment variable"). */
  readonly unset: string[];
  /** Text after `$` or inside `${…}` that is not a valid name; it expands to nothing. */
  readonly invalid: string[];
}

/** A valid variable name: letters, digits and `_`, not starting with a digit (bash's rule). */
export function isValidEnvName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}

function lookup(name: string, env: Environment, unset: Set<string>, invalid: Set<string>): string | undefined {
  if (!isValidEnvName(name)) {
    invalid.add(name);
    return undefined;
  }
  const v = Object.hasOwn(env, name) ? env[name] : undefined;
  if (v === undefined) unset.add(name);
  return v;
}

/** `${NAME}` anywhere in a word, and `$$`; anything else with a `$` is left as written. */
function replaceInWord(word: string, env: Environment, unset: Set<string>, invalid: Set<string>): string {
  type State = 'word' | 'curly' | 'variable';
  let state: State = 'word';
  let out = '';
  let start = 0; // first character not yet copied to `out`
  for (let i = 0; i < word.length; i++) {
    const c = word[i];
    if (state === 'word') {
      if (c === '$') state = 'curly';
    } else if (state === 'curly') {
      if (c === '{') {
        out += word.slice(start, i - 1);
        start = i - 1;
        state = 'variable';
      } else if (c === '$') {
        out += word.slice(start, i);
        start = i + 1;
        state = 'word';
      } else state = 'word';
    } else if (c === '}') {
      out += lookup(word.slice(start + 2, i), env, unset, invalid) ?? '';
      start = i + 1;
      state = 'word';
    } else if (c === ':') {
      // ${NAME:-default} is not supported in command lines: the text stays as written.
      state = 'word';
    }
  }
  return out + word.slice(start);
}

function splitValue(value: string): string[] {
  const reader = new WordReader(value);
  const words: string[] = [];
  for (;;) {
    const r = reader.next({ unquote: true, relax: true });
    if (r.kind !== 'word') return words;
    words.push(r.word);
  }
}

function expand(words: readonly string[], env: Environment, keepFirst: boolean): ExpandResult {
  const argv: string[] = [];
  const unset = new Set<string>();
  const invalid = new Set<string>();
  words.forEach((word, index) => {
    if (keepFirst && index === 0) {
      argv.push(word);
      return;
    }
    if (word.startsWith('$') && word[1] !== '{' && word[1] !== '$') {
      // A word that is exactly $NAME becomes zero or more words, split like a shell would, quotes honoured.
      const value = lookup(word.slice(1), env, unset, invalid);
      if (value !== undefined) argv.push(...splitValue(value));
      return;
    }
    argv.push(replaceInWord(word, env, unset, invalid));
  });
  return { argv, unset: [...unset].sort(), invalid: [...invalid].sort() };
}

/**
 * Expands variables in a command's argv (systemd-spec.md §8.1):
 * - a word that is exactly `$NAME` is replaced by the value split on whitespace, honouring quotes
 *   (zero or more words; an unset variable removes the word, and so does a word such as `$FOO/bar`
 *   whose rest is not a valid name);
 * - `${NAME}` anywhere inside a word is replaced verbatim, keeping one word;
 * - `$$` is a literal `$`;
 * - `$NAME` inside a larger word, and `${NAME:-x}`/`${NAME:+x}`, are left as written;
 * - unset variables expand to nothing;
 * - argv[0] is never expanded.
 * Commands with the `:` prefix must not be passed through this at all.
 */
export function expandExecArgs(words: readonly string[], env: Environment): string[] {
  return expand(words, env, true).argv;
}

/** {@link expandExecArgs}, also returning the unset and invalid names so the caller can log them. */
export function expandExecArgsDetailed(words: readonly string[], env: Environment): ExpandResult {
  return expand(words, env, true);
}

/** What to pass to execve(): the program (still a bare name if not absolute) and the full argv. */
export interface ExecInvocation {
  /** Absolute path or a bare name to resolve with `findExecutable()`. */
  readonly file: string;
  readonly argv: string[];
  readonly unset: string[];
  readonly invalid: string[];
}

/** Options for {@link buildExecInvocation}. */
export interface InvocationOptions {
  /** The login shell of the user the command runs as, for `|` commands (default `/bin/sh`). */
  readonly shell?: string;
}

/**
 * Turns an {@link ExecCommand} and the final environment into what to execute, applying the `:` and
 * `|` prefixes: a `|` command becomes `SHELL -c "WORDS…"` (its words expanded first, then joined with
 * spaces) with argv[0] `-SHELL` for `|@`.
 */
export function buildExecInvocation(cmd: ExecCommand, env: Environment, options: InvocationOptions = {}): ExecInvocation {
  if (cmd.viaShell) {
    const shell = options.shell ?? DEFAULT_SHELL;
    const words = cmd.argv.slice(1);
    const r = cmd.noEnvExpand ? { argv: words, unset: [], invalid: [] } : expand(words, env, false);
    const argv = [(cmd.loginShell ? '-' : '') + shell];
    if (r.argv.length > 0) argv.push('-c', r.argv.join(' '));
    return { file: shell, argv, unset: r.unset, invalid: r.invalid };
  }
  if (cmd.noEnvExpand) return { file: cmd.path, argv: [...cmd.argv], unset: [], invalid: [] };
  const r = expand(cmd.argv, env, true);
  return { file: cmd.path, argv: r.argv, unset: r.unset, invalid: r.invalid };
}
