/**
 * `Exec*=` command lines (systemd.service(5) "Command lines"): prefixes, splitting into words at load
 * time, specifiers per word, `;` between commands, and the executable search done at spawn time.
 */

import { accessSync, constants, statSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { DiagnosticSink } from './diagnostics.js';
import { expandSpecifiers, type SpecifierContext } from './specifiers.js';
import { WordReader, WHITESPACE } from './words.js';

/** One command of an `Exec*=` setting, ready for the spawner. */
export interface ExecCommand {
  /**
   * The program: an absolute path, or a bare file name to look up with {@link findExecutable} when
   * the command runs (the file may appear after the unit was loaded). `/bin/sh` for `|` commands,
   * where the user's shell replaces it at spawn time.
   */
  readonly path: string;
  /**
   * The arguments including argv[0], specifiers already expanded. Normally argv[0] is `path`; with
   * `@` it is the word after the program. For `|` commands argv[0] is `sh` (`-sh` with `|@`) and the
   * rest are the words joined into the shell's `-c` string.
   */
  readonly argv: readonly string[];
  /** `-`: a non-zero exit (or a missing program) is not a failure. */
  readonly ignoreFailure: boolean;
  /** `:`: no `$VAR` expansion at exec time. */
  readonly noEnvExpand: boolean;
  /** `|`: run through the user's shell with `-c`. */
  readonly viaShell: boolean;
  /** `|@`: the shell is started as a login shell (argv[0] prefixed with `-`). */
  readonly loginShell: boolean;
  /** `+`: run with full privileges: no `User=`/`Group=` switch, no sandboxing. */
  readonly fullPrivileges: boolean;
  /** `!`: like the others, but without the `User=`/`Group=` switch. */
  readonly noSetuid: boolean;
  /** Where the command was written, for messages at spawn time. */
  readonly source: { readonly file: string; readonly line: number };
}

/** Where bare program names are looked up, in order (systemd's fixed search path). */
export const DEFAULT_EXEC_SEARCH_PATH: readonly string[] = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The placeholder path of `|` commands (systemd's `_PATH_BSHELL`). */
export const DEFAULT_SHELL = '/bin/sh';

const PREFIXES = '-@:|+!';

function isSafeString(s: string): boolean {
  // systemd's string_is_safe(): no control characters, quotes or backslashes.
  return !/[\x01-\x1f\x7f"'\\]/.test(s);
}

function impliesDirectory(p: string): boolean {
  return p === '.' || p === '..' || p.endsWith('/') || p.endsWith('/.') || p.endsWith('/..');
}

function isValidProgram(p: string): boolean {
  if (p.startsWith('/')) {
    if (Buffer.byteLength(p) > 4095) return false;
    return p.split('/').every((c) => Buffer.byteLength(c) <= 255);
  }
  return p !== '' && p !== '.' && p !== '..' && !p.includes('/') && Buffer.byteLength(p) <= 255;
}

function simplifyPath(p: string): string {
  if (!p.startsWith('/')) return p;
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  return '/' + parts.join('/');
}

/**
 * Parses the value of one `Exec*=` line into commands. Returns `null` for an empty value, which
 * resets the list. Problems go to `sink`: an `error` unless the command has the `-` prefix, in which
 * case systemd only warns and drops that command.
 */
export function parseExecLine(value: string, key: string, line: number, ctx: SpecifierContext, sink: DiagnosticSink): ExecCommand[] | null {
  if (value === '') return null;
  const commands: ExecCommand[] = [];
  const reader = new WordReader(value);
  const extractOptions = { unquote: true, cunescape: true } as const;
  const warnEscapes = (word: string) => sink.warning(line, `Ignoring unknown escape sequences in ${key}=: "${word}"`, key);
  const warnUtf8 = () => sink.warning(line, `${key}= contains an escape that is not valid UTF-8; it was replaced by U+FFFD`, key);

  let semicolon: boolean;
  do {
    semicolon = false;
    const first = reader.nextLenient(extractOptions);
    if (first.kind === 'end') break;
    if (first.kind === 'error') {
      sink.error(line, first.error === 'quote' ? `Unbalanced quoting in ${key}=, ignoring: ${value}` : `Cannot split ${key}= into words: ${value}`, key);
      break;
    }
    if (first.relaxedEscapes) warnEscapes(first.word);
    if (first.invalidUtf8) warnUtf8();
    if (first.word === ';') {
      semicolon = true;
      continue;
    }

    let f = first.word;
    let ignoreFailure = false;
    let separateArgv0 = false;
    let noEnvExpand = false;
    let viaShell = false;
    let fullPrivileges = false;
    let noSetuid = false;
    let ambientHack = false;
    for (;; f = f.slice(1)) {
      const c = f[0];
      if (c === '-' && !ignoreFailure) ignoreFailure = true;
      else if (c === '@' && !separateArgv0) separateArgv0 = true;
      else if (c === ':' && !noEnvExpand) noEnvExpand = true;
      else if (c === '|' && !viaShell) viaShell = true;
      else if (c === '+' && !fullPrivileges && !noSetuid && !ambientHack) fullPrivileges = true;
      else if (c === '!' && !fullPrivileges && !noSetuid && !ambientHack) noSetuid = true;
      else if (c === '!' && !fullPrivileges && !ambientHack) {
        // "!!" asked for ambient capabilities on old kernels; systemd 258 dropped it and treats it as nothing.
        noSetuid = false;
        ambientHack = true;
        sink.notice(line, `The !! modifier for ${key}= lines is no longer supported and is now ignored. Please remove it.`, key);
      } else break;
    }

    // A failed command with '-' is dropped with a warning; without it, the unit fails to load.
    const problem = (message: string): void => {
      if (ignoreFailure) sink.warning(line, message + ', ignoring', key);
      else sink.error(line, message, key);
    };

    const args: string[] = [];
    let program: string;
    if (viaShell) {
      program = DEFAULT_SHELL;
      args.push(separateArgv0 ? '-sh' : 'sh');
      if (f !== '') {
        const r = expandSpecifiers(f, ctx);
        if (!r.ok) {
          problem(`${key}=: ${r.error} in '${f}'`);
          return commands;
        }
        args.push(r.value);
      }
    } else {
      const r = expandSpecifiers(f, ctx);
      if (!r.ok) {
        problem(`${key}=: ${r.error} in '${f}'`);
        return commands;
      }
      program = r.value;
      if (program === '') {
        problem(`Empty executable path in ${key}=: ${value}`);
        return commands;
      }
      if (!isSafeString(program)) {
        problem(`Executable path in ${key}= contains special characters: ${program}`);
        return commands;
      }
      if (impliesDirectory(program)) {
        problem(`Executable path in ${key}= specifies a directory: ${program}`);
        return commands;
      }
      if (!isValidProgram(program)) {
        const lead = program[0] ?? '';
        problem(
          PREFIXES.includes(lead)
            ? `${key}=: prefix '${lead}' is repeated or cannot be combined with the others: ${first.word}`
            : `${key}= needs an absolute path or a plain file name, not '${program}'`,
        );
        return commands;
      }
      if (!separateArgv0) args.push(program);
    }

    while (!reader.done) {
      // A lone unquoted ';' ends the command; a lone '\;' is a literal ';' argument. Both are checked on
      // the raw text because after unquoting ';', "\;" and '\\;' would all look alike.
      const c0 = reader.peek(0);
      const c1 = reader.peek(1);
      const c2 = reader.peek(2);
      const isWsByte = (c: number | undefined) => c === undefined || WHITESPACE.includes(String.fromCharCode(c));
      if (c0 === 0x3b && isWsByte(c1)) {
        reader.skip(1);
        semicolon = true;
        break;
      }
      if (c0 === 0x5c && c1 === 0x3b && isWsByte(c2)) {
        reader.skip(2);
        args.push(';');
        continue;
      }
      const w = reader.nextLenient(extractOptions);
      if (w.kind === 'end') break;
      if (w.kind === 'error') {
        problem(w.error === 'quote' ? `Unbalanced quoting in ${key}=: ${value}` : `Cannot split ${key}= into words: ${value}`);
        return commands;
      }
      if (w.relaxedEscapes) warnEscapes(w.word);
      if (w.invalidUtf8) warnUtf8();
      const r = expandSpecifiers(w.word, ctx);
      if (!r.ok) {
        problem(`${key}=: ${r.error} in '${w.word}'`);
        return commands;
      }
      args.push(r.value);
    }

    if (args.length === 0) {
      problem(`Empty executable name or zeroth argument in ${key}=: ${value}`);
      return commands;
    }

    commands.push({
      path: simplifyPath(program),
      argv: args,
      ignoreFailure,
      noEnvExpand,
      viaShell,
      loginShell: viaShell && separateArgv0,
      fullPrivileges,
      noSetuid,
      source: { file: sink.file, line },
    });
  } while (semicolon);
  return commands;
}

function isExecutableFileSync(candidate: string): boolean {
  try {
    if (!statSync(candidate).isFile()) return false;
    accessSync(candidate, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function isExecutableFile(candidate: string): Promise<boolean> {
  try {
    if (!(await stat(candidate)).isFile()) return false;
    await access(candidate, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves a command's program at spawn time. An absolute path is returned as is when it names an
 * executable regular file; a bare name is looked up in `searchPath`. Undefined when nothing fits (the
 * spawner should then fail the command as systemd does, with exit status 203/EXEC).
 */
export function findExecutable(program: string, searchPath: readonly string[] = DEFAULT_EXEC_SEARCH_PATH): string | undefined {
  if (program.includes('/')) return path.isAbsolute(program) && isExecutableFileSync(program) ? program : undefined;
  for (const dir of searchPath) {
    const candidate = path.join(dir, program);
    if (isExecutableFileSync(candidate)) return candidate;
  }
  return undefined;
}

/** {@link findExecutable} without blocking the event loop. */
export async function findExecutableAsync(program: string, searchPath: readonly string[] = DEFAULT_EXEC_SEARCH_PATH): Promise<string | undefined> {
  if (program.includes('/')) return path.isAbsolute(program) && (await isExecutableFile(program)) ? program : undefined;
  for (const dir of searchPath) {
    const candidate = path.join(dir, program);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** The command as one line (for `status` and logs), quoting words that need it. */
export function formatExecCommand(cmd: ExecCommand): string {
  const prefix = (cmd.ignoreFailure ? '-' : '') + (cmd.noEnvExpand ? ':' : '') + (cmd.fullPrivileges ? '+' : '') + (cmd.noSetuid ? '!' : '') + (cmd.viaShell ? '|' : '');
  const quote = (w: string) => (w === '' || /[\s"'\\;$]/.test(w) ? `"${w.replace(/(["\\$])/g, '\\$1')}"` : w);
  if (cmd.viaShell) return `${prefix}${cmd.loginShell ? '@' : ''}${cmd.argv.slice(1).map(quote).join(' ')}`;
  const argv0Differs = cmd.argv[0] !== cmd.path;
  const words = argv0Differs ? [`@${quote(cmd.path)}`, ...cmd.argv.map(quote)] : cmd.argv.map(quote);
  return prefix + words.join(' ');
}
