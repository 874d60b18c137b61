import type { Subject } from './rules.js';
import type { RobotStore } from './robots.js';
import type { Principal } from './types.js';
import { ROBOT_PREFIX, type UserStore } from './users.js';

export function principalOf(subject: string): Principal {
  if (subject === '') return { subject, kind: 'anonymous' };
  if (subject.startsWith(ROBOT_PREFIX)) return { subject, kind: 'robot' };
  return { subject, kind: 'user' };
}

/**
 * The live identity behind a token subject, or undefined when that user or robot no longer exists
 * (or, given a binding, when its password changed or the robot was re-created).
 */
export async function resolveSubject(users: UserStore, robots: RobotStore, subject: string, binding?: string): Promise<Subject | undefined> {
  if (subject === '') return { kind: 'anonymous' };
  if (subject.startsWith(ROBOT_PREFIX)) {
    const name = subject.slice(ROBOT_PREFIX.length);
    const robot = await robots.current(name, binding);
    return robot ? { kind: 'robot', name, robot } : undefined;
  }
  const fp = await users.fingerprint(subject);
  if (fp === undefined || (binding !== undefined && fp !== binding)) return undefined;
  return { kind: 'user', name: subject };
}
