/**
 * holdfast's unit-file library: systemd-style `.service` units parsed into a typed
 * {@link ServiceUnitConfig}, with file:line diagnostics, plus the helpers the manager needs at spawn
 * time (executable lookup, `$VAR` expansion, environment files).
 */

export { DiagnosticSink, formatDiagnostic, hasErrors, type Diagnostic, type Severity } from './diagnostics.js';
export { lexUnitFile, splitLines, LONG_LINE_MAX, type Assignment, type LexOptions, type SectionHeader, type UnitFileSyntax } from './lexer.js';
export { splitWords, WordReader, strip, WHITESPACE, type ExtractError, type ExtractOptions, type ExtractResult } from './words.js';
export {
  expandSpecifiers,
  hostSpecifierContext,
  systemdArchitecture,
  type HostContext,
  type HostContextOptions,
  type ManagerDirectories,
  type ManagerScope,
  type ManagerUser,
  type SpecifierContext,
  type SpecifierResult,
  type SpecifierSet,
} from './specifiers.js';
export {
  escapeUnitName,
  escapeUnitPath,
  instantiate,
  isValidInstance,
  isValidUnitName,
  parseUnitName,
  templateOf,
  unescapeUnitName,
  unescapeUnitPath,
  UNIT_TYPES,
  type UnitNameKind,
  type UnitNameParts,
  type UnitType,
} from './unit-name.js';
export {
  checkPath,
  EXIT_STATUS_NAMES,
  formatTimeSpan,
  parseBoolean,
  parseExitStatus,
  parseInteger,
  parseMode,
  parsePercent,
  parseRlimit,
  parseSignal,
  parseSize,
  parseSizeBig,
  parseTimeSpan,
  parseTimeSpanUsec,
  parseUnsigned,
  RLIMIT_NAMES,
  SIGNALS,
  SIGRTMAX,
  SIGRTMIN,
  signalName,
  type ResourceLimit,
  type RlimitName,
  type ValueResult,
} from './values.js';
export { DEFAULT_EXEC_SEARCH_PATH, DEFAULT_SHELL, findExecutable, findExecutableAsync, formatExecCommand, parseExecLine, type ExecCommand } from './exec-line.js';
export {
  buildExecInvocation,
  expandExecArgs,
  expandExecArgsDetailed,
  isValidEnvName,
  type Environment,
  type ExecInvocation,
  type ExpandResult,
  type InvocationOptions,
} from './env-expand.js';
export {
  expandPathGlob,
  loadEnvironmentFiles,
  parseEnvironmentFile,
  type EnvironmentFileRef,
  type EnvironmentFileResult,
  type EnvironmentFilesResult,
} from './environment-file.js';
export {
  DEFAULTS,
  EXEC_KEYS,
  type ExecKey,
  type ExitStatusSet,
  type InstallSection,
  type KillMode,
  type NotifyAccess,
  type PathCondition,
  type PathConditionKind,
  type Percentage,
  type RestartPolicy,
  type ServiceSection,
  type ServiceType,
  type ServiceUnitConfig,
  type StandardError,
  type StandardInput,
  type StandardOutput,
  type TimeoutFailureMode,
  type UnitSection,
  type WorkingDirectory,
} from './service-config.js';
export { isSupportedKey, SERVICE_SECTIONS } from './directives.js';
export { SYSTEMD_KEYS } from './known-keys.js';
export { parseServiceUnit, parseServiceUnitText, type ParseOptions, type ParseResult, type UnitSource } from './parse.js';
export {
  defaultUnitDirs,
  dropInDirNames,
  listUnits,
  loadServiceUnit,
  resolveUnitFiles,
  UnitDirectories,
  type LoadOptions,
  type LoadResult,
  type LoadState,
  type UnitFiles,
  type UnitListEntry,
  type UnitListKind,
} from './load.js';
