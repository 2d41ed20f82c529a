/**
 * Condition*= checks (path conditions), evaluated when a start begins: a failed condition skips
 * the start cleanly, as systemd does. Only the file system is read.
 */
import { accessSync, constants as fsConstants, existsSync, readdirSync, statSync } from 'node:fs';
import type { PathCondition, ServiceUnitConfig } from '../../unit/index.js';

/** The first condition of the unit that fails, as text, or null when the unit may start. */
export function checkConditions(config: ServiceUnitConfig): string | null {
  return conditionFailure(config.unit.conditions) ?? null;
}

/** The first condition that fails, as text, or undefined when all hold. Triggering (`|`) ones need one to hold. */
export function conditionFailure(conditions: readonly PathCondition[]): string | undefined {
  for (const c of conditions) {
    if (!c.trigger && !holds(c)) return `Condition${c.kind}=${c.negate ? '!' : ''}${c.path}`;
  }
  const triggers = conditions.filter((c) => c.trigger);
  if (triggers.length > 0 && !triggers.some(holds)) return `Condition…=|${triggers.map((c) => c.path).join('|')}`;
  return undefined;
}

function holds(c: PathCondition): boolean {
  let result: boolean;
  try {
    switch (c.kind) {
      case 'PathExists':
        result = existsSync(c.path);
        break;
      case 'PathIsDirectory':
        result = statSync(c.path).isDirectory();
        break;
      case 'FileNotEmpty': {
        const stat = statSync(c.path);
        result = stat.isFile() && stat.size > 0;
        break;
      }
      case 'DirectoryNotEmpty':
        result = readdirSync(c.path).length > 0;
        break;
      case 'FileIsExecutable':
        accessSync(c.path, fsConstants.X_OK);
        result = statSync(c.path).isFile();
        break;
      case 'PathIsReadWrite':
        accessSync(c.path, fsConstants.W_OK);
        result = true;
        break;
      default:
        result = existsSync(c.path);
    }
  } catch {
    // A path that cannot be examined does not satisfy the condition.
    result = false;
  }
  return c.negate ? !result : result;
}
