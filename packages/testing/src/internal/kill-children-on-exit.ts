import type { ChildProcess } from 'node:child_process';

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

/**
 * SIGKILLs `child` when this process exits (`process.on('exit')`) while the child is still running,
 * so a test that forgets `close()` leaves no server behind. The handler is installed while at least
 * one child is tracked and removed with the last one, so it never piles up.
 *
 * Inside jest this is not enough: a test file's `process` is a sandbox copy whose `'exit'` never
 * fires, and a worker ended by a signal runs no handler at all. Children are therefore also started
 * under `setpriv --pdeathsig KILL` where it exists (see `redis-process.ts`).
 */
export function killOnExit(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  if (children.size === 0) process.on('exit', killAll);
  children.add(child);
  const forget = () => {
    if (!children.delete(child)) return;
    if (children.size === 0) process.off('exit', killAll);
  };
  child.once('exit', forget);
  child.once('close', forget);
}
