/**
 * The line level of unit files (systemd.syntax(7), systemd's `config_parse()`): lines, comments,
 * continuation lines, `[Section]` headers and `Key=value` assignments. It knows nothing about what the
 * keys mean; that is {@link ./directives.ts}.
 */

import { DiagnosticSink, type Diagnostic } from './diagnostics.js';
import { decodeUtf8, strip } from './words.js';

/** A `[Section]` line. */
export interface SectionHeader {
  readonly name: string;
  readonly line: number;
}

/** One `Key=value` assignment, with continuation lines already joined. */
export interface Assignment {
  readonly file: string;
  readonly section: string;
  readonly key: string;
  readonly value: string;
  /** The line the assignment starts on. */
  readonly line: number;
}

/** A unit file split into its sections and assignments. */
export interface UnitFileSyntax {
  readonly file: string;
  readonly sections: SectionHeader[];
  /** Assignments in file order, only those inside sections that are accepted. */
  readonly assignments: Assignment[];
  readonly diagnostics: Diagnostic[];
}

/** Options for {@link lexUnitFile}. */
export interface LexOptions {
  /**
   * Sections the caller understands; others get an "Unknown section" warning and their assignments
   * are dropped. `X-` sections are dropped silently. Undefined accepts every section.
   */
  readonly knownSections?: readonly string[];
}

/** Longest line systemd reads (LONG_LINE_MAX, 1 MiB); longer lines make the file invalid. */
export const LONG_LINE_MAX = 1024 * 1024;

const EOL_NONE = 0;
const EOL_NUL = 1;
const EOL_LF = 2;
const EOL_CR = 4;

function eolKind(c: number): number {
  return c === 0x0a ? EOL_LF : c === 0x0d ? EOL_CR : c === 0 ? EOL_NUL : EOL_NONE;
}

/**
 * Splits bytes into lines as systemd's `read_line()` does: a line ends at LF, CR, CR LF, LF CR or NUL,
 * so `\r\n` is one line end but `\n\n` is two.
 */
export function splitLines(bytes: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let i = 0;
  while (i < bytes.length) {
    const start = i;
    while (i < bytes.length && eolKind(bytes[i]!) === EOL_NONE) i++;
    const end = i;
    let seen = EOL_NONE;
    while (i < bytes.length) {
      const k = eolKind(bytes[i]!);
      if (k === EOL_NONE || (seen & EOL_NUL) !== 0 || (seen & k) !== 0) break;
      seen |= k;
      i++;
    }
    lines.push(bytes.subarray(start, end));
  }
  return lines;
}

const BOM = [0xef, 0xbb, 0xbf];

function isCommentLine(line: Uint8Array): boolean {
  let i = 0;
  while (i < line.length && (line[i] === 0x20 || line[i] === 0x09 || line[i] === 0x0a || line[i] === 0x0d)) i++;
  return line[i] === 0x23 || line[i] === 0x3b;
}

/**
 * True when the line ends in a backslash that is not itself escaped. Looking at the newest physical
 * line alone is enough: the line before it in a continuation now ends in a space.
 */
function endsWithEscape(line: Uint8Array): boolean {
  let escaped = false;
  for (const c of line) escaped = escaped ? false : c === 0x5c;
  return escaped;
}

function isSafeSectionName(name: string): boolean {
  return !/[\x01-\x1f\x7f"'\\]/.test(name);
}

/**
 * Lexes one unit file. Never throws: everything wrong becomes a diagnostic. A continued assignment is
 * reported at the line it starts on. Comment lines inside a continuation are skipped, as systemd does.
 */
export function lexUnitFile(content: string | Uint8Array, file: string, options: LexOptions = {}): UnitFileSyntax {
  const sink = new DiagnosticSink(file);
  const sections: SectionHeader[] = [];
  const assignments: Assignment[] = [];
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const known = options.knownSections;

  let section: string | undefined;
  let sectionIgnored = false;
  let bomSeen = false;
  let continuation: Uint8Array[] | undefined;
  let continuationLength = 0;
  let continuationLine = 0;
  let lineNo = 0;

  const parseLogical = (parts: readonly Uint8Array[], line: number) => {
    const joined = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const { text: decoded, valid } = decodeUtf8(joined);
    const l = strip(decoded);
    if (l === '') return;
    if (!valid) {
      sink.warning(line, 'Line is not valid UTF-8, ignoring');
      return;
    }
    if (l.startsWith('[')) {
      if (!l.endsWith(']')) {
        sink.error(line, `Invalid section header '${l}'`);
        return;
      }
      const name = l.slice(1, -1);
      if (!isSafeSectionName(name)) {
        sink.error(line, `Bad characters in section header '${l}'`);
        return;
      }
      sections.push({ name, line });
      if (known !== undefined && !known.includes(name)) {
        if (!name.startsWith('X-')) sink.warning(line, `Unknown section '${name}'. Ignoring.`);
        section = undefined;
        sectionIgnored = true;
      } else {
        section = name;
        sectionIgnored = false;
      }
      return;
    }
    if (section === undefined) {
      if (!sectionIgnored) sink.warning(line, 'Assignment outside of section. Ignoring.');
      return;
    }
    const eq = l.indexOf('=');
    if (eq < 0) {
      sink.warning(line, "Missing '=', ignoring line.");
      return;
    }
    if (eq === 0) {
      sink.warning(line, "Missing key name before '=', ignoring line.");
      return;
    }
    assignments.push({ file, section, key: strip(l.slice(0, eq)), value: strip(l.slice(eq + 1)), line });
  };

  for (let raw of splitLines(bytes)) {
    lineNo++;
    if (raw.length > LONG_LINE_MAX) {
      sink.error(lineNo, `Line too long (more than ${LONG_LINE_MAX} bytes)`);
      continuation = undefined;
      continue;
    }
    if (isCommentLine(raw)) continue;
    if (!bomSeen && raw[0] === BOM[0] && raw[1] === BOM[1] && raw[2] === BOM[2]) {
      raw = raw.subarray(3);
      bomSeen = true;
    }
    let parts: Uint8Array[];
    if (continuation !== undefined) {
      if (continuationLength + raw.length > LONG_LINE_MAX) {
        sink.error(continuationLine, `Continuation line too long (more than ${LONG_LINE_MAX} bytes)`);
        continuation = undefined;
        continue;
      }
      continuation.push(raw);
      continuationLength += raw.length;
      parts = continuation;
    } else {
      parts = [raw];
    }
    if (endsWithEscape(raw)) {
      // The backslash becomes a space and the next line is appended as it is.
      const last = parts[parts.length - 1]!;
      const copy = Uint8Array.from(last);
      copy[copy.length - 1] = 0x20;
      parts[parts.length - 1] = copy;
      if (continuation === undefined) {
        continuation = parts;
        continuationLength = raw.length;
        continuationLine = lineNo;
      }
      continue;
    }
    parseLogical(parts, continuation !== undefined ? continuationLine : lineNo);
    continuation = undefined;
  }
  if (continuation !== undefined) parseLogical(continuation, continuationLine);
  return { file, sections, assignments, diagnostics: sink.list };
}
