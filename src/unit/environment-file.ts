/**
 * `EnvironmentFile=` files, read by the manager just before a command runs. The syntax is systemd's
 * `load_env_file()`: `KEY=VALUE` lines, `#`/`;` comments at the start of a line, shell-like single and
 * double quotes, a backslash that escapes the next character or joins lines.
 */

import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DiagnosticSink, type Diagnostic } from './diagnostics.js';
import { isValidEnvName } from './env-expand.js';
import { decodeUtf8 } from './words.js';

/** The variables of one file, and what was wrong with it. */
export interface EnvironmentFileResult {
  /** Assignments in file order; a later one of the same name wins. */
  readonly env: Record<string, string>;
  readonly diagnostics: Diagnostic[];
  /**
   * False when the file as a whole is unusable (systemd refuses a file with invalid UTF-8 in a key or
   * value); the command then fails unless the file was listed with `-`.
   */
  readonly ok: boolean;
}

const NEWLINE = (c: number) => c === 0x0a || c === 0x0d;
const WS = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
// Inside double quotes a backslash only escapes these; before anything else it stays, as in sh.
const SHELL_NEED_ESCAPE = new Set([0x22, 0x5c, 0x60, 0x24]);

/**
 * Parses the text of an environment file. Lines that are not valid assignments (no `=`, a name that
 * is not a valid variable name, such as `export FOO=bar` — systemd has no `export` keyword and drops
 * such a line) are skipped with a warning; the rest still apply.
 */
export function parseEnvironmentFile(content: string | Uint8Array, file = '<environment>'): EnvironmentFileResult {
  const sink = new DiagnosticSink(file);
  const env: Record<string, string> = {};
  let bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const nul = bytes.indexOf(0);
  if (nul >= 0) bytes = bytes.subarray(0, nul); // the C reader stops at the first NUL
  let usable = true;

  type State = 'preKey' | 'key' | 'preValue' | 'value' | 'valueEscape' | 'single' | 'double' | 'doubleEscape' | 'comment' | 'commentEscape';
  let state: State = 'preKey';
  let key: number[] = [];
  let value: number[] = [];
  let lastKeyWs = -1;
  let lastValueWs = -1;
  let line = 1;
  let keyLine = 1;

  const push = () => {
    if (lastKeyWs >= 0) key = key.slice(0, lastKeyWs);
    const k = decodeUtf8(Uint8Array.from(key));
    const v = decodeUtf8(Uint8Array.from(value));
    if (!k.valid || !v.valid) {
      sink.error(keyLine, `invalid UTF-8 in ${k.valid ? `the value of ${k.text}` : 'a variable name'}; the file is not used`);
      usable = false;
    } else if (!isValidEnvName(k.text)) {
      sink.warning(keyLine, `Ignoring invalid environment assignment '${k.text}=${v.text}'`);
    } else {
      delete env[k.text]; // keep file order for the last assignment
      env[k.text] = v.text;
    }
    key = [];
    value = [];
  };

  for (let i = 0; i < bytes.length && usable; i++) {
    const c = bytes[i]!;
    if (i > 0 && bytes[i - 1] === 0x0a) line++;
    switch (state) {
      case 'preKey':
        if (c === 0x23 || c === 0x3b) state = 'comment';
        else if (!WS(c)) {
          state = 'key';
          lastKeyWs = -1;
          keyLine = line;
          key.push(c);
        }
        break;
      case 'key':
        if (NEWLINE(c)) {
          sink.warning(keyLine, `Ignoring line without '=': ${decodeUtf8(Uint8Array.from(key)).text}`);
          state = 'preKey';
          key = [];
        } else if (c === 0x3d) {
          state = 'preValue';
          lastValueWs = -1;
        } else {
          if (!WS(c)) lastKeyWs = -1;
          else if (lastKeyWs < 0) lastKeyWs = key.length;
          key.push(c);
        }
        break;
      case 'preValue':
        if (NEWLINE(c)) {
          state = 'preKey';
          push();
        } else if (c === 0x27) state = 'single';
        else if (c === 0x22) state = 'double';
        else if (c === 0x5c) state = 'valueEscape';
        else if (!WS(c)) {
          state = 'value';
          value.push(c);
        }
        break;
      case 'value':
        if (NEWLINE(c)) {
          state = 'preKey';
          if (lastValueWs >= 0) value = value.slice(0, lastValueWs);
          push();
        } else if (c === 0x5c) {
          state = 'valueEscape';
          lastValueWs = -1;
        } else {
          if (!WS(c)) lastValueWs = -1;
          else if (lastValueWs < 0) lastValueWs = value.length;
          value.push(c);
        }
        break;
      case 'valueEscape':
        state = 'value';
        if (!NEWLINE(c)) value.push(c);
        break;
      case 'single':
        if (c === 0x27) state = 'preValue';
        else value.push(c);
        break;
      case 'double':
        if (c === 0x22) state = 'preValue';
        else if (c === 0x5c) state = 'doubleEscape';
        else value.push(c);
        break;
      case 'doubleEscape':
        state = 'double';
        if (SHELL_NEED_ESCAPE.has(c)) value.push(c);
        else if (c !== 0x0a) value.push(0x5c, c);
        break;
      case 'comment':
        if (c === 0x5c) state = 'commentEscape';
        else if (NEWLINE(c)) state = 'preKey';
        break;
      case 'commentEscape':
        // Since systemd 254 a backslash does not continue a comment onto the next line.
        state = NEWLINE(c) ? 'preKey' : 'comment';
        break;
    }
  }
  if (usable) {
    if (state === 'value' && lastValueWs >= 0) value = value.slice(0, lastValueWs);
    if (['preValue', 'value', 'valueEscape', 'single', 'double', 'doubleEscape'].includes(state)) push();
    else if (state === 'key') sink.warning(keyLine, `Ignoring line without '=': ${decodeUtf8(Uint8Array.from(key)).text}`);
  }
  return { env: usable ? env : {}, diagnostics: sink.list, ok: usable };
}

/** One `EnvironmentFile=` entry of a unit. */
export interface EnvironmentFileRef {
  /** Absolute path; may contain glob characters (`*`, `?`, `[…]`), all matches are read in order. */
  readonly path: string;
  /** Written with a leading `-`: a missing or unreadable file is not an error. */
  readonly optional: boolean;
}

/** Result of {@link loadEnvironmentFiles}. */
export interface EnvironmentFilesResult {
  /** All files merged, later files overriding earlier ones. */
  readonly env: Record<string, string>;
  readonly diagnostics: Diagnostic[];
  /** Set when a non-optional file is missing or unusable: the command must not run. */
  readonly error?: { readonly path: string; readonly message: string };
}

function globToRegExp(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let body = pattern.slice(i + 1, end);
        if (body.startsWith('!')) body = '^' + body.slice(1);
        re += '[' + body.replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

/** Expands `*`, `?` and `[…]` in the components of an absolute path, sorted like glob(3). */
export function expandPathGlob(pattern: string): string[] {
  if (!/[*?[]/.test(pattern)) return [pattern];
  let bases = ['/'];
  for (const part of pattern.split('/').filter((p) => p !== '')) {
    const next: string[] = [];
    if (!/[*?[]/.test(part)) {
      for (const b of bases) next.push(path.join(b, part));
    } else {
      const re = globToRegExp(part);
      for (const b of bases) {
        let names: string[];
        try {
          names = readdirSync(b);
        } catch {
          continue;
        }
        for (const n of names.sort()) if (re.test(n) && (!n.startsWith('.') || part.startsWith('.'))) next.push(path.join(b, n));
      }
    }
    bases = next;
  }
  return bases;
}

/**
 * Reads a unit's `EnvironmentFile=` entries at spawn time, as systemd does (synchronously: the
 * spawn that needs them is synchronous too): each path is globbed,
 * each match parsed with {@link parseEnvironmentFile}, and the results merged in order. A missing,
 * unreadable or invalid file stops with `error` unless its entry is optional.
 */
export function loadEnvironmentFiles(refs: readonly EnvironmentFileRef[]): EnvironmentFilesResult {
  const env: Record<string, string> = {};
  const diagnostics: Diagnostic[] = [];
  for (const ref of refs) {
    if (!path.isAbsolute(ref.path)) {
      if (ref.optional) continue;
      return { env, diagnostics, error: { path: ref.path, message: 'EnvironmentFile= path is not absolute' } };
    }
    const paths = expandPathGlob(ref.path);
    if (paths.length === 0) {
      if (ref.optional) continue;
      return { env, diagnostics, error: { path: ref.path, message: 'no file matches' } };
    }
    for (const p of paths) {
      let content: Buffer;
      try {
        content = readFileSync(p);
      } catch (error) {
        if (ref.optional) continue;
        const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
        return { env, diagnostics, error: { path: p, message: `cannot read the file (${code})` } };
      }
      const r = parseEnvironmentFile(content, p);
      diagnostics.push(...r.diagnostics);
      if (!r.ok) {
        if (ref.optional) continue;
        return { env, diagnostics, error: { path: p, message: 'the file contains invalid UTF-8' } };
      }
      Object.assign(env, r.env);
    }
  }
  return { env, diagnostics };
}
