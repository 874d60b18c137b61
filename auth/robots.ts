import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { FileBacked, writeFileAtomic } from './files.js';

/** Robot names: short, lowercase, usable in a shell without quoting. */
export const ROBOT_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

const robotSchema = z
  .object({
    name: z.string().regex(ROBOT_NAME),
    /** Random per creation: refresh tokens carry it, so re-creating a robot voids the old ones. */
    id: z.string().min(8),
    /** sha256 (hex) of the secret. The secret has 256 bits of entropy, so a plain hash suffices. */
    secretHash: z.string().regex(/^[0-9a-f]{64}$/),
    repositories: z.array(z.string().min(1)).min(1),
    actions: z.array(z.string().regex(/^([a-z]+|\*)$/)).min(1),
    createdAt: z.string(),
    expiresAt: z.string().nullable().default(null),
    description: z.string().default(''),
  })
  .strict();
export type Robot = z.infer<typeof robotSchema>;

const robotsFileSchema = z.object({ robots: z.array(robotSchema).default([]) }).strict();

export function parseRobots(text: string | undefined): Robot[] {
  if (text === undefined || text.trim() === '') return [];
  return robotsFileSchema.parse(JSON.parse(text)).robots;
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function isExpired(robot: Robot, now = Date.now()): boolean {
  return robot.expiresAt !== null && Date.parse(robot.expiresAt) <= now;
}

export type RobotLogin = { ok: true; robot: Robot } | { ok: false };

/** Robot accounts kept in a JSON file, re-read when it changes. */
export class RobotStore {
  private readonly file: FileBacked<Robot[]>;

  constructor(
    readonly path: string,
    warn: (msg: string) => void = () => {},
  ) {
    this.file = new FileBacked(path, parseRobots, (err) => warn(`robots file ${path}: reload failed: ${(err as Error).message}`));
  }

  load(): Promise<Robot[]> {
    return this.file.load();
  }

  async verify(name: string, secret: string): Promise<RobotLogin> {
    const robots = await this.file.get();
    const robot = robots.find((r) => r.name === name);
    const given = hashSecret(secret);
    // Compare against something even for an unknown name, so timing says nothing.
    const expected = robot ? Buffer.from(robot.secretHash, 'hex') : hashSecret(randomBytes(32).toString('hex'));
    const match = timingSafeEqual(given, expected);
    if (!robot || !match || isExpired(robot)) return { ok: false };
    return { ok: true, robot };
  }

  /** The live robot with this name and id, or undefined when revoked, re-created or expired. */
  async current(name: string, id?: string): Promise<Robot | undefined> {
    const robot = (await this.file.get()).find((r) => r.name === name);
    if (!robot || isExpired(robot) || (id !== undefined && robot.id !== id)) return undefined;
    return robot;
  }
}

async function readRobots(path: string): Promise<Robot[]> {
  try {
    return parseRobots(await readFile(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function writeRobots(path: string, robots: Robot[]): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify({ robots }, null, 2)}\n`);
}

export interface NewRobot {
  name: string;
  repositories: string[];
  actions: string[];
  expiresAt?: Date | undefined;
  description?: string | undefined;
}

/** Creates (or replaces) a robot and returns its secret, which is stored only as a hash. */
export async function createRobot(path: string, spec: NewRobot): Promise<{ robot: Robot; secret: string }> {
  const secret = `berth_${randomBytes(32).toString('base64url')}`;
  const robot = robotSchema.parse({
    name: spec.name,
    id: randomBytes(12).toString('base64url'),
    secretHash: hashSecret(secret).toString('hex'),
    repositories: spec.repositories,
    actions: spec.actions,
    createdAt: new Date().toISOString(),
    expiresAt: spec.expiresAt ? spec.expiresAt.toISOString() : null,
    description: spec.description ?? '',
  });
  const robots = (await readRobots(path)).filter((r) => r.name !== spec.name);
  robots.push(robot);
  await writeRobots(path, robots);
  return { robot, secret };
}

export async function revokeRobot(path: string, name: string): Promise<boolean> {
  const robots = await readRobots(path);
  const rest = robots.filter((r) => r.name !== name);
  if (rest.length === robots.length) return false;
  await writeRobots(path, rest);
  return true;
}

export async function listRobots(path: string): Promise<Robot[]> {
  return readRobots(path);
}
