/**
 * From file contents to a {@link ServiceUnitConfig}: lex the fragment and each drop-in, apply their
 * assignments in order to one draft, then apply the defaults and checks. Pure: no file system access
 * (unless no host context is given), so tests and fuzzers can feed it anything.
 */

import { DiagnosticSink, hasErrors, type Diagnostic } from './diagnostics.js';
import { applyAssignment, SERVICE_SECTIONS } from './directives.js';
import { lexUnitFile } from './lexer.js';
import { finalizeService, newServiceDraft, type ServiceUnitConfig } from './service-config.js';
import { hostSpecifierContext, type HostContext, type SpecifierContext } from './specifiers.js';
import { parseUnitName, templateOf } from './unit-name.js';

/** One file of a unit: its path (used in diagnostics and `%y`) and its bytes or text. */
export interface UnitSource {
  readonly file: string;
  readonly content: string | Uint8Array;
}

/** Options for {@link parseServiceUnit}. */
export interface ParseOptions {
  /** The unit's name, e.g. `web.service` or `web@8080.service` (what `%n`, `%i`… expand from). */
  readonly unitName: string;
  /** Further names the unit is known by (aliases), listed after `unitName` in the config. */
  readonly aliases?: readonly string[];
  /** Host facts for specifiers; read from the running system when omitted. */
  readonly host?: HostContext;
}

/** The outcome of parsing: a config only when there was no error. */
export interface ParseResult {
  readonly config: ServiceUnitConfig | undefined;
  readonly diagnostics: Diagnostic[];
}

/**
 * Parses a service unit from its fragment (`sources[0]`) and drop-ins (the rest, in the order they
 * apply). Never throws. A unit with any error-level diagnostic yields `config: undefined`.
 */
export function parseServiceUnit(sources: readonly UnitSource[], options: ParseOptions): ParseResult {
  const fragment = sources[0];
  const parts = parseUnitName(options.unitName);
  if (fragment === undefined || parts === undefined || parts.type !== 'service' || parts.kind === 'template') {
    const why =
      fragment === undefined
        ? 'no unit file was given'
        : parts === undefined
          ? `'${options.unitName}' is not a valid unit name`
          : parts.type !== 'service'
            ? `.${parts.type} units are not supported by holdfast; only .service units are`
            : 'a template cannot be loaded without an instance name';
    return { config: undefined, diagnostics: [{ file: fragment?.file ?? options.unitName, line: fragment === undefined ? 0 : 1, severity: 'error', message: why }] };
  }

  const host = options.host ?? hostSpecifierContext();
  const spec: SpecifierContext = { ...host, unitName: options.unitName, fragmentPath: fragment.file };
  const draft = newServiceDraft();
  const diagnostics: Diagnostic[] = [];
  let serviceLine = 1;
  let fragmentSink: DiagnosticSink | undefined;

  sources.forEach((source, index) => {
    const syntax = lexUnitFile(source.content, source.file, { knownSections: SERVICE_SECTIONS });
    const sink = new DiagnosticSink(source.file);
    sink.list.push(...syntax.diagnostics);
    if (index === 0) {
      fragmentSink = sink;
      serviceLine = syntax.sections.find((s) => s.name === 'Service')?.line ?? 1;
    }
    for (const assignment of syntax.assignments) applyAssignment({ draft, spec, sink, assignment });
    if (index > 0) finishFile(sink, diagnostics);
  });

  const config = finalizeService(
    draft,
    {
      name: options.unitName,
      names: [options.unitName, ...(options.aliases ?? []).filter((a) => a !== options.unitName)],
      ...(parts.kind === 'instance' ? { template: templateOf(options.unitName)!, instance: parts.instance! } : {}),
      fragmentPath: fragment.file,
      dropInPaths: sources.slice(1).map((s) => s.file),
      scope: host.scope,
      serviceLine,
    },
    fragmentSink!,
  );
  finishFile(fragmentSink!, diagnostics, true);
  return { config: hasErrors(diagnostics) ? undefined : config, diagnostics };
}

/** Adds a file's diagnostics in line order; the fragment's go first. */
function finishFile(sink: DiagnosticSink, into: Diagnostic[], first = false): void {
  const sorted = sink.list.map((d, i) => [d, i] as const).sort((a, b) => a[0].line - b[0].line || a[1] - b[1]).map(([d]) => d);
  if (first) into.unshift(...sorted);
  else into.push(...sorted);
}

/** Convenience for one in-memory file: `parseServiceUnit([{ file, content }], options)`. */
export function parseServiceUnitText(content: string | Uint8Array, file: string, options: ParseOptions): ParseResult {
  return parseServiceUnit([{ file, content }], options);
}
