import { access, constants, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';

/**
 * Looks `name` up in the directories of `searchPath` (a `PATH`-style list), in order, as the shell
 * would, and resolves with the absolute path of the first executable file, or `undefined`.
 * Relative and empty entries are skipped.
 */
export async function findExecutable(
  name: string,
  searchPath: string | undefined,
): Promise<string | undefined> {
  for (const directory of (searchPath ?? '').split(delimiter)) {
    if (!directory || !isAbsolute(directory)) continue;
    const candidate = join(directory, name);
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here: try the next directory
    }
  }
  return undefined;
}
