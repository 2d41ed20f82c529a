/**
 * The Varlink interface definition language: a parser to a plain data model, a formatter back to
 * text, and a validator that checks call parameters against a method's input.
 *
 * The grammar is varlink.org's ("Interface Definition"). Two conventions from systemd are understood
 * on top of it: comments on their own lines directly before a field or enum value document it (as
 * systemd's formatter writes them), and a doc comment line `[Requires 'more' flag]` or
 * `[Supports 'more' flag]` before a method marks how it streams.
 *
 * @module
 */

import type { JsonObject, JsonValue } from './types.js';

/** A Varlink type expression. */
export type VarlinkType =
  | { kind: 'bool' }
  | { kind: 'int' }
  | { kind: 'float' }
  | { kind: 'string' }
  | { kind: 'object' }
  | { kind: 'named'; name: string }
  | VarlinkStructType
  | VarlinkEnumType
  | { kind: 'nullable'; type: VarlinkType }
  | { kind: 'array'; type: VarlinkType }
  | { kind: 'map'; type: VarlinkType };

/** `(name: type, ...)`: a JSON object with these fields. */
export interface VarlinkStructType {
  kind: 'struct';
  fields: VarlinkField[];
}

/** `(a, b, c)`: a JSON string, one of these values. */
export interface VarlinkEnumType {
  kind: 'enum';
  values: VarlinkEnumValue[];
}

/** One field of a struct. */
export interface VarlinkField {
  name: string;
  type: VarlinkType;
  /** Text of the comment lines directly above the field, `#` and one space stripped, joined by `\n`. */
  doc?: string;
}

/** One value of an enum. */
export interface VarlinkEnumValue {
  name: string;
  /** Text of the comment lines directly above the value. */
  doc?: string;
}

/** `type Name (...)`. */
export interface VarlinkTypeDefinition {
  kind: 'type';
  name: string;
  doc?: string;
  type: VarlinkStructType | VarlinkEnumType;
}

/** `method Name (...) -> (...)`. */
export interface VarlinkMethodDefinition {
  kind: 'method';
  name: string;
  doc?: string;
  input: VarlinkStructType;
  output: VarlinkStructType;
  /**
   * How the method uses the `more` flag, from systemd's annotation comment. `'requires'` makes the
   * server answer a call without `more` with `org.varlink.service.ExpectedMore`. Absent means
   * unspecified, which varlink.org allows to stream or not.
   */
  more?: 'supports' | 'requires';
}

/** `error Name (...)`. */
export interface VarlinkErrorDefinition {
  kind: 'error';
  name: string;
  doc?: string;
  parameters: VarlinkStructType;
}

/** A member of an interface. */
export type VarlinkMember = VarlinkTypeDefinition | VarlinkMethodDefinition | VarlinkErrorDefinition;

/** A parsed interface definition, members in source order. */
export interface VarlinkInterface {
  name: string;
  doc?: string;
  members: VarlinkMember[];
}

/** The IDL text is not a valid interface definition. */
export class VarlinkIdlError extends Error {
  override readonly name = 'VarlinkIdlError';
  /**
   * @param message - what is wrong
   * @param line - 1-based line of the offending token
   * @param column - 1-based column of the offending token
   */
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${line}:${column}: ${message}`);
  }
}

// varlink.org's grammar allows only lowercase interface names, but systemd's own interfaces
// (io.systemd.Unit, io.systemd.Manager) use uppercase letters and sd-varlink accepts them, so we do too.
const INTERFACE_NAME = /^[A-Za-z]([-]*[A-Za-z0-9])*(\.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+$/;
const MEMBER_NAME = /^[A-Z][A-Za-z0-9]*$/;
const FIELD_NAME = /^[A-Za-z](_?[A-Za-z0-9])*$/;
const PRIMITIVES = new Set(['bool', 'int', 'float', 'string', 'object']);
const REQUIRES_MORE = "[Requires 'more' flag]";
const SUPPORTS_MORE = "[Supports 'more' flag]";

/** Whether `name` is a valid interface name (reverse-domain, dot-separated labels). */
export function isInterfaceName(name: string): boolean {
  return INTERFACE_NAME.test(name);
}

// ---------------------------------------------------------------------------------------------
// Lexer

interface Token {
  /** `word` covers keywords, names and primitive type names; the rest are punctuation. */
  kind: 'word' | '(' | ')' | ',' | ':' | '?' | '[' | ']' | '->' | 'eof';
  text: string;
  line: number;
  column: number;
  /** The comment block on the lines directly above this token, if the token starts its line. */
  doc?: string;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  // Comment lines waiting for the token they document. A blank line or a token discards them.
  let pendingDoc: string[] = [];
  let lineHasToken = false;
  let lineHasComment = false;

  const endLine = (): void => {
    if (!lineHasToken && !lineHasComment) pendingDoc = [];
    line++;
    lineStart = i;
    lineHasToken = false;
    lineHasComment = false;
  };

  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n' || c === '\r') {
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      endLine();
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\u00a0' || c === '\ufeff') {
      i++;
      continue;
    }
    const column = i - lineStart + 1;
    if (c === '#') {
      let end = i;
      while (end < text.length && text[end] !== '\n' && text[end] !== '\r') end++;
      // Only a comment that starts its line documents something; one after code is a remark.
      if (!lineHasToken) {
        let body = text.slice(i + 1, end);
        if (body.startsWith(' ')) body = body.slice(1);
        pendingDoc.push(body.trimEnd());
        lineHasComment = true;
      }
      i = end;
      continue;
    }
    const doc = !lineHasToken && pendingDoc.length > 0 ? pendingDoc.join('\n') : undefined;
    pendingDoc = [];
    lineHasToken = true;
    let kind: Token['kind'];
    let tokenText: string;
    if (c === '-' && text[i + 1] === '>') {
      kind = '->';
      tokenText = '->';
      i += 2;
    } else if ('(),:?[]'.includes(c)) {
      kind = c as Token['kind'];
      tokenText = c;
      i++;
    } else if (/[A-Za-z]/.test(c)) {
      let end = i + 1;
      while (end < text.length && /[A-Za-z0-9_.-]/.test(text[end]!)) {
        if (text[end] === '-' && text[end + 1] === '>') break;
        end++;
      }
      kind = 'word';
      tokenText = text.slice(i, end);
      i = end;
    } else {
      throw new VarlinkIdlError(`unexpected character ${JSON.stringify(c)}`, line, column);
    }
    const token: Token = { kind, text: tokenText, line, column };
    if (doc !== undefined) token.doc = doc;
    tokens.push(token);
  }
  tokens.push({ kind: 'eof', text: '', line, column: i - lineStart + 1 });
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// Parser

class Parser {
  #pos = 0;
  constructor(private readonly tokens: Token[]) {}

  peek(offset = 0): Token {
    return this.tokens[Math.min(this.#pos + offset, this.tokens.length - 1)]!;
  }

  next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.#pos++;
    return t;
  }

  fail(token: Token, message: string): never {
    throw new VarlinkIdlError(message, token.line, token.column);
  }

  expect(kind: Token['kind'], what?: string): Token {
    const t = this.next();
    if (t.kind !== kind) this.fail(t, `expected ${what ?? `'${kind}'`}, found ${show(t)}`);
    return t;
  }

  word(pattern: RegExp, what: string): Token {
    const t = this.next();
    if (t.kind !== 'word') this.fail(t, `expected ${what}, found ${show(t)}`);
    if (!pattern.test(t.text)) this.fail(t, `invalid ${what} ${JSON.stringify(t.text)}`);
    return t;
  }

  parseInterface(): VarlinkInterface {
    const kw = this.next();
    if (kw.kind !== 'word' || kw.text !== 'interface') this.fail(kw, `expected 'interface', found ${show(kw)}`);
    const name = this.word(INTERFACE_NAME, 'interface name');
    const iface: VarlinkInterface = { name: name.text, members: [] };
    if (kw.doc !== undefined) iface.doc = kw.doc;
    const seen = new Set<string>();
    for (;;) {
      const t = this.peek();
      if (t.kind === 'eof') break;
      if (t.kind !== 'word' || !['type', 'method', 'error'].includes(t.text)) {
        this.fail(t, `expected 'type', 'method' or 'error', found ${show(t)}`);
      }
      this.next();
      const nameToken = this.word(MEMBER_NAME, `${t.text} name`);
      if (seen.has(nameToken.text)) this.fail(nameToken, `${JSON.stringify(nameToken.text)} is defined twice`);
      seen.add(nameToken.text);
      const member = this.parseMember(t, nameToken.text);
      iface.members.push(member);
    }
    if (iface.members.length === 0) this.fail(this.peek(), 'an interface needs at least one member');
    return iface;
  }

  parseMember(keyword: Token, name: string): VarlinkMember {
    const doc = keyword.doc;
    if (keyword.text === 'type') {
      const open = this.peek();
      const type = this.parseParenthesized(true);
      if (type.kind === 'struct' && type.fields.length === 0) this.fail(open, `type ${name} is empty`);
      return withDoc({ kind: 'type', name, type }, doc);
    }
    if (keyword.text === 'error') {
      const parameters = this.parseStruct();
      return withDoc({ kind: 'error', name, parameters }, doc);
    }
    const input = this.parseStruct();
    this.expect('->', "'->'");
    const output = this.parseStruct();
    const method: VarlinkMethodDefinition = { kind: 'method', name, input, output };
    if (doc !== undefined) {
      const lines = doc.split('\n');
      const kept = lines.filter((l) => l !== REQUIRES_MORE && l !== SUPPORTS_MORE);
      if (lines.includes(REQUIRES_MORE)) method.more = 'requires';
      else if (lines.includes(SUPPORTS_MORE)) method.more = 'supports';
      if (kept.length > 0) method.doc = kept.join('\n');
    }
    return method;
  }

  parseStruct(): VarlinkStructType {
    const open = this.peek();
    const t = this.parseParenthesized(false);
    if (t.kind !== 'struct') this.fail(open, 'expected a struct of fields, found an enum');
    return t;
  }

  /** `( ... )`: a struct if the first entry has a `:`, an enum otherwise; `()` is an empty struct. */
  parseParenthesized(allowEnum: boolean): VarlinkStructType | VarlinkEnumType {
    this.expect('(', "'('");
    if (this.peek().kind === ')') {
      this.next();
      return { kind: 'struct', fields: [] };
    }
    if (this.peek().kind !== 'word') this.fail(this.peek(), `expected ${allowEnum ? 'field name or enum value' : 'field name'}, found ${show(this.peek())}`);
    const isStruct = this.peek(1).kind === ':';
    if (!isStruct && !allowEnum) {
      // Enums are fine as types, but method and error parameters must be structs.
      const after = this.peek(1);
      if (after.kind === ',' || after.kind === ')') this.fail(this.peek(), 'expected a struct of fields, found an enum');
      this.fail(after, `expected ':', found ${show(after)}`);
    }
    const names = new Set<string>();
    if (isStruct) {
      const fields: VarlinkField[] = [];
      for (;;) {
        const nameToken = this.word(FIELD_NAME, 'field name');
        if (names.has(nameToken.text)) this.fail(nameToken, `field ${JSON.stringify(nameToken.text)} is defined twice`);
        names.add(nameToken.text);
        this.expect(':', "':'");
        const field: VarlinkField = { name: nameToken.text, type: this.parseType() };
        if (nameToken.doc !== undefined) field.doc = nameToken.doc;
        fields.push(field);
        if (this.separator()) break;
      }
      return { kind: 'struct', fields };
    }
    const values: VarlinkEnumValue[] = [];
    for (;;) {
      const nameToken = this.word(FIELD_NAME, 'enum value');
      if (names.has(nameToken.text)) this.fail(nameToken, `enum value ${JSON.stringify(nameToken.text)} is defined twice`);
      names.add(nameToken.text);
      values.push(withDoc({ name: nameToken.text }, nameToken.doc));
      if (this.separator()) break;
    }
    return { kind: 'enum', values };
  }

  /** Consumes `,` (returns false: more entries follow) or `)` (returns true). */
  separator(): boolean {
    const t = this.next();
    if (t.kind === ')') return true;
    if (t.kind !== ',') this.fail(t, `expected ',' or ')', found ${show(t)}`);
    if (this.peek().kind === ')') this.fail(this.peek(), "expected an entry after ',', found ')'");
    return false;
  }

  parseType(): VarlinkType {
    if (this.peek().kind === '?') {
      this.next();
      if (this.peek().kind === '?') this.fail(this.peek(), "'?' cannot be repeated");
      return { kind: 'nullable', type: this.parseNonNullable() };
    }
    return this.parseNonNullable();
  }

  parseNonNullable(): VarlinkType {
    const t = this.peek();
    if (t.kind === '[') {
      this.next();
      const inner = this.next();
      if (inner.kind === ']') return { kind: 'array', type: this.parseType() };
      if (inner.kind === 'word' && inner.text === 'string') {
        this.expect(']', "']'");
        return { kind: 'map', type: this.parseType() };
      }
      this.fail(inner, `expected '[]' or '[string]', found ${show(inner)}`);
    }
    if (t.kind === '(') return this.parseParenthesized(true);
    if (t.kind === 'word') {
      this.next();
      if (PRIMITIVES.has(t.text)) return { kind: t.text } as VarlinkType;
      if (MEMBER_NAME.test(t.text)) return { kind: 'named', name: t.text };
      this.fail(t, `unknown type ${JSON.stringify(t.text)}`);
    }
    this.fail(t, `expected a type, found ${show(t)}`);
  }
}

function show(t: Token): string {
  return t.kind === 'eof' ? 'end of input' : `'${t.text}'`;
}

function withDoc<T extends object>(value: T, doc: string | undefined): T & { doc?: string } {
  if (doc !== undefined) (value as T & { doc?: string }).doc = doc;
  return value;
}

/** Checks that every named type refers to a `type` member of the same interface. */
function checkReferences(iface: VarlinkInterface, tokens: Token[]): void {
  const types = new Set(iface.members.filter((m) => m.kind === 'type').map((m) => m.name));
  const bad: string[] = [];
  const visit = (t: VarlinkType): void => {
    switch (t.kind) {
      case 'named':
        if (!types.has(t.name)) bad.push(t.name);
        break;
      case 'struct':
        for (const f of t.fields) visit(f.type);
        break;
      case 'nullable':
      case 'array':
      case 'map':
        visit(t.type);
        break;
      default:
    }
  };
  for (const m of iface.members) {
    if (m.kind === 'type') visit(m.type);
    else if (m.kind === 'method') {
      visit(m.input);
      visit(m.output);
    } else visit(m.parameters);
  }
  if (bad.length > 0) {
    const name = bad[0]!;
    const where = tokens.find((t) => t.kind === 'word' && t.text === name) ?? tokens[0]!;
    throw new VarlinkIdlError(`type ${JSON.stringify(name)} is not defined in interface ${iface.name}`, where.line, where.column);
  }
}

/**
 * Parses an interface definition.
 *
 * @throws VarlinkIdlError with the line and column of the first problem: syntax, invalid names,
 *   duplicate members, fields or enum values, empty `type`s, or references to undefined types.
 */
export function parseInterface(text: string): VarlinkInterface {
  const tokens = tokenize(text);
  const iface = new Parser(tokens).parseInterface();
  checkReferences(iface, tokens);
  return iface;
}

// ---------------------------------------------------------------------------------------------
// Formatter

const INLINE_MAX = 76;

function hasDocs(t: VarlinkType): boolean {
  switch (t.kind) {
    case 'struct':
      return t.fields.some((f) => f.doc !== undefined || hasDocs(f.type));
    case 'enum':
      return t.values.some((v) => v.doc !== undefined);
    case 'nullable':
    case 'array':
    case 'map':
      return hasDocs(t.type);
    default:
      return false;
  }
}

function formatDoc(doc: string | undefined, indent: string): string {
  if (doc === undefined) return '';
  return doc
    .split('\n')
    .map((l) => (l === '' ? `${indent}#\n` : `${indent}# ${l}\n`))
    .join('');
}

function formatInline(t: VarlinkType): string {
  switch (t.kind) {
    case 'named':
      return t.name;
    case 'struct':
      return `(${t.fields.map((f) => `${f.name}: ${formatInline(f.type)}`).join(', ')})`;
    case 'enum':
      return `(${t.values.map((v) => v.name).join(', ')})`;
    case 'nullable':
      return `?${formatInline(t.type)}`;
    case 'array':
      return `[]${formatInline(t.type)}`;
    case 'map':
      return `[string]${formatInline(t.type)}`;
    default:
      return t.kind;
  }
}

function formatType(t: VarlinkType, indent: string): string {
  if (!hasDocs(t)) {
    const inline = formatInline(t);
    if (indent.length * 8 + inline.length <= INLINE_MAX) return inline;
  }
  switch (t.kind) {
    case 'struct': {
      if (t.fields.length === 0) return '()';
      const inner = `${indent}\t`;
      const body = t.fields.map((f) => `${formatDoc(f.doc, inner)}${inner}${f.name}: ${formatType(f.type, inner)}`).join(',\n');
      return `(\n${body}\n${indent})`;
    }
    case 'enum': {
      const inner = `${indent}\t`;
      const body = t.values.map((v) => `${formatDoc(v.doc, inner)}${inner}${v.name}`).join(',\n');
      return `(\n${body}\n${indent})`;
    }
    case 'nullable':
      return `?${formatType(t.type, indent)}`;
    case 'array':
      return `[]${formatType(t.type, indent)}`;
    case 'map':
      return `[string]${formatType(t.type, indent)}`;
    default:
      return formatInline(t);
  }
}

/**
 * Formats an interface as IDL text: the interface doc and name, then each member after a blank line
 * with its doc comment. Structs and enums stay on one line when they are short and carry no field
 * docs, otherwise they get one tab-indented line per entry. `parseInterface(formatInterface(x))`
 * equals `x`.
 */
export function formatInterface(iface: VarlinkInterface): string {
  let out = `${formatDoc(iface.doc, '')}interface ${iface.name}\n`;
  for (const m of iface.members) {
    out += '\n';
    if (m.kind === 'method') {
      const lines = m.doc === undefined ? [] : [m.doc];
      if (m.more === 'requires') lines.push(REQUIRES_MORE);
      else if (m.more === 'supports') lines.push(SUPPORTS_MORE);
      out += formatDoc(lines.length > 0 ? lines.join('\n') : undefined, '');
      out += `method ${m.name}${formatType(m.input, '')} -> ${formatType(m.output, '')}\n`;
    } else {
      out += formatDoc(m.doc, '');
      const body = m.kind === 'type' ? m.type : m.parameters;
      out += `${m.kind} ${m.name} ${formatType(body, '')}\n`;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Lookup

interface InterfaceIndex {
  types: Map<string, VarlinkTypeDefinition>;
  methods: Map<string, VarlinkMethodDefinition>;
  errors: Map<string, VarlinkErrorDefinition>;
}

const indexes = new WeakMap<VarlinkInterface, InterfaceIndex>();

function indexOf(iface: VarlinkInterface): InterfaceIndex {
  let index = indexes.get(iface);
  if (index === undefined) {
    index = { types: new Map(), methods: new Map(), errors: new Map() };
    for (const m of iface.members) {
      if (m.kind === 'type') index.types.set(m.name, m);
      else if (m.kind === 'method') index.methods.set(m.name, m);
      else index.errors.set(m.name, m);
    }
    indexes.set(iface, index);
  }
  return index;
}

/** The method called `name` (unqualified), if the interface defines one. */
export function findMethod(iface: VarlinkInterface, name: string): VarlinkMethodDefinition | undefined {
  return indexOf(iface).methods.get(name);
}

/** The type called `name`, if the interface defines one. */
export function findType(iface: VarlinkInterface, name: string): VarlinkTypeDefinition | undefined {
  return indexOf(iface).types.get(name);
}

/** The error called `name` (unqualified), if the interface defines one. */
export function findError(iface: VarlinkInterface, name: string): VarlinkErrorDefinition | undefined {
  return indexOf(iface).errors.get(name);
}

// ---------------------------------------------------------------------------------------------
// Validator

/** Why a value does not match a type. */
export interface ValidationFailure {
  /**
   * The top-level field the problem is in. This is what goes into
   * `org.varlink.service.InvalidParameter`'s `parameter`, as sd-varlink reports it.
   */
  parameter: string;
  /** Where exactly, e.g. `pid.pidfdId` or `names[2]` or `env["HOME"]`. */
  path: string;
  /** A sentence for logs, naming the path, the expected type and what was found. */
  reason: string;
}

const DECIMAL_INTEGER = /^-?(0|[1-9][0-9]*)$/;

// A recursive type (`type Tree (children: []Tree)`) lets a client nest as deep as it likes; past
// this depth the value is refused instead of exhausting the stack.
const MAX_DEPTH = 256;

function describeValue(value: JsonValue | undefined): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'string': {
      const shown = value.length > 40 ? `${value.slice(0, 37)}...` : value;
      return `string ${JSON.stringify(shown)}`;
    }
    case 'number':
      return `number ${value}`;
    case 'boolean':
      return `${value}`;
    default:
      return 'an object';
  }
}

class Validator {
  constructor(private readonly iface: VarlinkInterface) {}

  /**
   * Returns the value to store (it differs from `value` only when an integer string was turned
   * into a number), or a failure reason with the path where it happened.
   */
  value(type: VarlinkType, value: JsonValue | undefined, path: string, depth = 0): { ok: true; value: JsonValue | undefined } | { ok: false; path: string; reason: string } {
    if (depth > MAX_DEPTH) return { ok: false, path, reason: `${path}: nested more than ${MAX_DEPTH} levels deep` };
    if (type.kind === 'nullable') {
      if (value === undefined || value === null) return { ok: true, value };
      return this.value(type.type, value, path, depth);
    }
    if (value === undefined) return { ok: false, path, reason: `${path}: required, but missing` };
    if (value === null) return { ok: false, path, reason: `${path}: required, but null` };
    const mismatch = (expected: string): { ok: false; path: string; reason: string } => ({
      ok: false,
      path,
      reason: `${path}: expected ${expected}, got ${describeValue(value)}`,
    });
    switch (type.kind) {
      case 'bool':
        return typeof value === 'boolean' ? { ok: true, value } : mismatch('bool');
      case 'string':
        return typeof value === 'string' ? { ok: true, value } : mismatch('string');
      case 'float':
        return typeof value === 'number' ? { ok: true, value } : mismatch('float');
      case 'object':
        return typeof value === 'object' && !Array.isArray(value) ? { ok: true, value } : mismatch('object');
      case 'int': {
        // sd-varlink accepts a decimal string for an int, since JSON numbers beyond 2^53 often
        // travel as strings. We do too, and hand the handler a number.
        let n: number;
        if (typeof value === 'number') n = value;
        else if (typeof value === 'string' && DECIMAL_INTEGER.test(value)) n = Number(value);
        else return mismatch('int');
        if (!Number.isInteger(n)) return mismatch('int');
        // Beyond 2^53 a JavaScript number is no longer exact: refuse rather than let an ID or a
        // size silently round to a neighbouring value.
        if (!Number.isSafeInteger(n)) {
          return { ok: false, path, reason: `${path}: integer ${typeof value === 'string' ? value : n} cannot be represented exactly (beyond ±2^53)` };
        }
        return { ok: true, value: n };
      }
      case 'enum':
        if (typeof value !== 'string') return mismatch(`one of (${type.values.map((v) => v.name).join(', ')})`);
        if (!type.values.some((v) => v.name === value)) {
          return { ok: false, path, reason: `${path}: ${JSON.stringify(value)} is not one of (${type.values.map((v) => v.name).join(', ')})` };
        }
        return { ok: true, value };
      case 'struct':
        if (typeof value !== 'object' || Array.isArray(value)) return mismatch('object');
        return this.struct(type, value, `${path}.`, depth + 1);
      case 'named': {
        const def = findType(this.iface, type.name);
        if (def === undefined) return { ok: false, path, reason: `${path}: type ${type.name} is not defined` };
        if (def.type.kind === 'struct' && (typeof value !== 'object' || Array.isArray(value))) return mismatch(`${type.name} object`);
        return this.value(def.type, value, path, depth);
      }
      case 'array': {
        if (!Array.isArray(value)) return mismatch('array');
        for (let i = 0; i < value.length; i++) {
          const r = this.value(type.type, value[i], `${path}[${i}]`, depth + 1);
          if (!r.ok) return r;
          if (r.value !== value[i]) value[i] = r.value as JsonValue;
        }
        return { ok: true, value };
      }
      case 'map': {
        if (typeof value !== 'object' || Array.isArray(value)) return mismatch('map object');
        for (const key of Object.keys(value)) {
          const r = this.value(type.type, value[key], `${path}[${JSON.stringify(key)}]`, depth + 1);
          if (!r.ok) return r;
          if (r.value !== value[key]) value[key] = r.value as JsonValue;
        }
        return { ok: true, value };
      }
    }
  }

  struct(type: VarlinkStructType, value: JsonObject, prefix: string, depth = 0): { ok: true; value: JsonObject } | { ok: false; path: string; reason: string } {
    for (const field of type.fields) {
      const own = Object.prototype.hasOwnProperty.call(value, field.name) ? value[field.name] : undefined;
      const r = this.value(field.type, own, `${prefix}${field.name}`, depth);
      if (!r.ok) return r;
      if (r.value !== own) value[field.name] = r.value as JsonValue;
    }
    // Unknown fields are refused, as sd-varlink does: a field the server does not know is most likely
    // a client written against a newer interface, and silently ignoring it would do something other
    // than what was asked.
    for (const key of Object.keys(value)) {
      if (!type.fields.some((f) => f.name === key)) {
        const path = `${prefix}${key}`;
        return { ok: false, path, reason: `${path}: no such field` };
      }
    }
    return { ok: true, value };
  }
}

function topLevel(path: string): string {
  const m = /^[^.[]*/.exec(path);
  return m?.[0] ?? path;
}

/**
 * Checks call parameters against a method's input struct.
 *
 * Rules: required fields must be present and not null; nullable (`?`) fields may be absent or null;
 * fields not declared are refused; `int` takes integral JSON numbers or decimal strings (turned into
 * numbers in place) within ±2^53; `float` takes any number; `object` takes any JSON object; enums
 * take one of their names. Named types are looked up in `iface`.
 *
 * @param parameters - modified in place where an int arrived as a string
 * @returns `undefined` if valid, else the failure
 */
export function validateParameters(iface: VarlinkInterface, method: VarlinkMethodDefinition, parameters: JsonObject): ValidationFailure | undefined {
  const r = new Validator(iface).struct(method.input, parameters, '');
  if (r.ok) return undefined;
  return { parameter: topLevel(r.path), path: r.path, reason: r.reason };
}

/**
 * Checks a value against any type of the interface, e.g. a method's output in tests.
 *
 * @returns `undefined` if valid, else the failure; `path` starts with `root`
 */
export function validateValue(iface: VarlinkInterface, type: VarlinkType, value: JsonValue | undefined, root = 'value'): ValidationFailure | undefined {
  const r = new Validator(iface).value(type, value, root);
  if (r.ok) return undefined;
  return { parameter: topLevel(r.path), path: r.path, reason: r.reason };
}
