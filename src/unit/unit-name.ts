/**
 * Unit names: validity, templates and instances, and the `\xNN` / `-` escaping that maps paths and
 * arbitrary strings into names (systemd.unit(5), systemd-escape(1)).
 */

import { decodeUtf8 } from './words.js';

/** The unit types systemd knows; only `service` is loadable by holdfast. */
export const UNIT_TYPES = ['service', 'mount', 'swap', 'socket', 'target', 'device', 'automount', 'timer', 'path', 'slice', 'scope'] as const;
export type UnitType = (typeof UNIT_TYPES)[number];

/** Longest valid unit name, in bytes (systemd's UNIT_NAME_MAX - 1). */
export const UNIT_NAME_MAX = 255;

const VALID_CHAR = /^[0-9A-Za-z:\-_.\\]$/;

/** How a unit name is built: `foo.service`, `foo@bar.service` or the template `foo@.service`. */
export type UnitNameKind = 'plain' | 'instance' | 'template';

/** The parts of a valid unit name. */
export interface UnitNameParts {
  readonly kind: UnitNameKind;
  /** Everything before the `@` (or before the suffix when there is no `@`). */
  readonly prefix: string;
  /** The text between `@` and the suffix; empty for a template, undefined for a plain name. */
  readonly instance?: string;
  readonly type: UnitType;
}

/** Splits a unit name, or returns undefined when it is not a valid one. */
export function parseUnitName(name: string): UnitNameParts | undefined {
  if (name.length === 0 || Buffer.byteLength(name) > UNIT_NAME_MAX) return undefined;
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const type = name.slice(dot + 1);
  if (!(UNIT_TYPES as readonly string[]).includes(type)) return undefined;
  let at = -1;
  for (let i = 0; i < dot; i++) {
    const c = name[i]!;
    if (c === '@') {
      if (at < 0) at = i;
      continue;
    }
    if (!VALID_CHAR.test(c)) return undefined;
  }
  if (at === 0) return undefined;
  if (at < 0) return { kind: 'plain', prefix: name.slice(0, dot), type: type as UnitType };
  const instance = name.slice(at + 1, dot);
  return { kind: instance.length > 0 ? 'instance' : 'template', prefix: name.slice(0, at), instance, type: type as UnitType };
}

/** True when `name` is a valid unit name of one of the given kinds (any kind by default). */
export function isValidUnitName(name: string, kinds: readonly UnitNameKind[] = ['plain', 'instance', 'template']): boolean {
  const parts = parseUnitName(name);
  return parts !== undefined && kinds.includes(parts.kind);
}

/** Whether a string may be used as an instance: non-empty, unit-name characters, `@` allowed. */
export function isValidInstance(instance: string): boolean {
  return instance.length > 0 && /^[0-9A-Za-z:\-_.\\@]+$/.test(instance);
}

/** `foo@bar.service` -> `foo@.service`; undefined for names that are not instances or templates. */
export function templateOf(name: string): string | undefined {
  const parts = parseUnitName(name);
  if (parts === undefined || parts.kind === 'plain') return undefined;
  return `${parts.prefix}@.${parts.type}`;
}

/** `foo@.service` + `bar` -> `foo@bar.service`; undefined if the result would not be a valid name. */
export function instantiate(template: string, instance: string): string | undefined {
  const parts = parseUnitName(template);
  if (parts === undefined || parts.kind === 'plain' || !isValidInstance(instance)) return undefined;
  const name = `${parts.prefix}@${instance}.${parts.type}`;
  return isValidUnitName(name, ['instance']) ? name : undefined;
}

/**
 * Undoes systemd's name escaping: `-` becomes `/`, `\xNN` the byte NN. Undefined when a backslash
 * is not followed by a well-formed `xNN`.
 */
export function unescapeUnitName(text: string): string | undefined {
  const out: number[] = [];
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === 0x2d) out.push(0x2f);
    else if (c === 0x5c) {
      if (bytes[i + 1] !== 0x78) return undefined;
      const hex = String.fromCharCode(bytes[i + 2] ?? 0, bytes[i + 3] ?? 0);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      out.push(parseInt(hex, 16));
      i += 3;
    } else out.push(c);
  }
  return decodeUtf8(Uint8Array.from(out)).text;
}

/** Turns an escaped path (`foo-bar`, or `-` for `/`) back into `/foo/bar`; undefined if not a normalized path. */
export function unescapeUnitPath(text: string): string | undefined {
  if (text.length === 0) return undefined;
  if (text === '-') return '/';
  const w = unescapeUnitName(text);
  if (w === undefined || w.startsWith('/') || w.endsWith('/')) return undefined;
  const path = '/' + w;
  if (path.split('/').slice(1).some((c) => c === '' || c === '.' || c === '..')) return undefined;
  return path;
}

/** systemd-escape(1): makes an arbitrary string usable inside a unit name. */
export function escapeUnitName(text: string): string {
  let out = '';
  const bytes = Buffer.from(text, 'utf8');
  bytes.forEach((c, i) => {
    const ch = String.fromCharCode(c);
    if (c === 0x2f) out += '-';
    else if ((i === 0 && c === 0x2e) || c === 0x2d || c === 0x5c || c >= 0x80 || !VALID_CHAR.test(ch)) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  });
  return out;
}

/** systemd-escape --path: `/var/lib/foo` -> `var-lib-foo`, `/` -> `-`. */
export function escapeUnitPath(path: string): string {
  const trimmed = path.split('/').filter((c) => c !== '' && c !== '.').join('/');
  return trimmed === '' ? '-' : escapeUnitName(trimmed);
}

/**
 * Why a name cannot be used for a unit file or a transient unit, in words, or undefined when it
 * can: a valid unit name of one of `types`, not a template, and not hidden. A name starting with
 * `.` is valid for systemd but hidden: unit directories skip such files, so a unit of that name
 * could never be found again by its file.
 */
export function unitNameProblem(name: string, types: readonly UnitType[] = ['service']): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (Buffer.byteLength(name) > UNIT_NAME_MAX) return `the name is longer than ${UNIT_NAME_MAX} bytes`;
  const dot = name.lastIndexOf('.');
  const type = dot < 0 ? '' : name.slice(dot + 1);
  if (!(types as readonly string[]).includes(type)) return `the name does not end in ${types.map((t) => `.${t}`).join(' or ')}`;
  if (dot === 0) return 'the name has nothing before its suffix';
  if (name.startsWith('.')) return "the name starts with '.' (a hidden file, skipped in unit directories)";
  for (const c of name.slice(0, dot)) {
    if (c !== '@' && !VALID_CHAR.test(c)) return `the name holds ${describeChar(c)}; unit names hold only ASCII letters, digits and ":-_.\\@"`;
  }
  const parts = parseUnitName(name);
  if (parts === undefined) return "the name starts with '@'";
  if (parts.kind === 'template') return 'the name is a template (nothing between @ and the suffix)';
  return undefined;
}

/** A character as a reader can tell it apart: `a space`, `a newline`, `"é" (U+00E9)`. */
function describeChar(c: string): string {
  if (c === ' ') return 'a space';
  if (c === '\n') return 'a newline';
  if (c === '\t') return 'a tab';
  const code = `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  return /\p{Cc}/u.test(c) ? `the control character ${code}` : `${JSON.stringify(c)} (${code})`;
}
