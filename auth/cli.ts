import { randomBytes } from 'node:crypto';
import { authConfigSchema, type AuthConfigInput } from './config.js';
import { authPaths } from './index.js';
import { KeyStore } from './keys.js';
import { ROBOT_NAME, createRobot, isExpired, listRobots, revokeRobot } from './robots.js';
import { ROBOT_PREFIX, USER_NAME, listUsers, removeUser, setUserPassword } from './users.js';

export interface CliContext {
  dataDir: string;
  /** The `auth` section of the loaded config (file locations). */
  auth?: AuthConfigInput | undefined;
  stdout?: ((text: string) => void) | undefined;
  stderr?: ((text: string) => void) | undefined;
  stdin?: NodeJS.ReadableStream | undefined;
}

export const USER_HELP = `Usage: berth user <command>

  add <name> [--password-stdin]   add a user, or set a new password for an existing one.
                                  Without --password-stdin a random password is generated and
                                  printed once.
  remove <name>                   remove a user; their tokens stop refreshing at once.
  list                            list user names.

Users live in auth.htpasswdFile (default <dataDir>/auth/htpasswd), bcrypt-hashed, compatible
with \`htpasswd -B\`. Running servers pick up changes without a restart.
`;

export const ROBOT_HELP = `Usage: berth robot <command>

  create <name> --repo <glob> [--repo <glob>...] [--actions pull,push]
         [--expires <days>d | <ISO date>] [--description <text>]
                                  create (or replace) a robot account for CI and print its
                                  secret once. Log in as ${ROBOT_PREFIX}<name> with that secret.
                                  Globs: * within one path segment, ** across segments.
                                  Actions default to pull.
  revoke <name>                   delete a robot; its logins and refresh tokens stop working.
  list                            list robots with their repositories, actions and expiry.

Robots live in auth.robotsFile (default <dataDir>/auth/robots.json); secrets are stored hashed.
`;

export const KEY_HELP = `Usage: berth key rotate

  rotate    make a new token signing key active. Tokens signed by the previous key keep
            working until they expire; running servers switch keys without a restart.
`;

function io(ctx: CliContext): { out: (t: string) => void; err: (t: string) => void } {
  return {
    out: ctx.stdout ?? ((t) => process.stdout.write(t)),
    err: ctx.stderr ?? ((t) => process.stderr.write(t)),
  };
}

function paths(ctx: CliContext) {
  return authPaths(authConfigSchema.parse(ctx.auth ?? {}), ctx.dataDir);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Splits `--flag value` and `--flag=value` options from positional arguments (`--config FILE` is the caller's). */
function parseArgs(args: string[], flags: string[], booleans: string[] = []): { positional: string[]; options: Map<string, string[]>; unknown: string[] } {
  const positional: string[] = [];
  const options = new Map<string, string[]>();
  const unknown: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    if (booleans.includes(name)) {
      options.set(name, ['true']);
    } else if (flags.includes(name)) {
      const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
      if (value === undefined) unknown.push(arg);
      else options.set(name, [...(options.get(name) ?? []), value]);
    } else {
      unknown.push(arg);
    }
  }
  return { positional, options, unknown };
}

/** `berth user add|remove|list`. Returns the process exit code. */
export async function runUserCommand(args: string[], ctx: CliContext): Promise<number> {
  const { out, err } = io(ctx);
  const [command, ...rest] = args;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h' || rest.includes('--help')) {
    out(USER_HELP);
    return command === undefined ? 2 : 0;
  }
  const file = paths(ctx).htpasswd;
  const { positional, options, unknown } = parseArgs(rest, ['config'], ['password-stdin']);
  if (unknown.length > 0) {
    err(`unknown option ${unknown.join(' ')}\n\n${USER_HELP}`);
    return 2;
  }
  const name = positional[0];
  switch (command) {
    case 'add': {
      if (!name || positional.length !== 1) return usage(err, USER_HELP);
      if (!USER_NAME.test(name) || name.startsWith(ROBOT_PREFIX)) {
        err(`invalid user name ${JSON.stringify(name)}: use lowercase letters, digits and . _ - (like a repository path component)\n`);
        return 2;
      }
      let password: string;
      let generated = false;
      if (options.has('password-stdin')) {
        password = (await readAll(ctx.stdin ?? process.stdin)).replace(/\r?\n$/, '');
        if (password.length < 8) {
          err('password too short (at least 8 characters)\n');
          return 2;
        }
      } else {
        password = randomBytes(18).toString('base64url');
        generated = true;
      }
      const fresh = await setUserPassword(file, name, password);
      out(`${fresh ? 'added user' : 'new password for'} ${name}\n`);
      if (generated) out(`password (shown once): ${password}\n`);
      return 0;
    }
    case 'remove': {
      if (!name || positional.length !== 1) return usage(err, USER_HELP);
      if (!(await removeUser(file, name))) {
        err(`no user ${name}\n`);
        return 1;
      }
      out(`removed user ${name}\n`);
      return 0;
    }
    case 'list': {
      for (const u of await listUsers(file)) out(`${u}\n`);
      return 0;
    }
    default:
      return usage(err, USER_HELP);
  }
}

function usage(err: (t: string) => void, help: string): number {
  err(help);
  return 2;
}

const ACTIONS = new Set(['pull', 'push', 'delete', '*']);

function parseExpiry(value: string, now = Date.now()): Date | undefined {
  const days = /^(\d+)d$/.exec(value);
  if (days) return new Date(now + Number(days[1]) * 86_400_000);
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : new Date(t);
}

/** `berth robot create|revoke|list`. Returns the process exit code. */
export async function runRobotCommand(args: string[], ctx: CliContext): Promise<number> {
  const { out, err } = io(ctx);
  const [command, ...rest] = args;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h' || rest.includes('--help')) {
    out(ROBOT_HELP);
    return command === undefined ? 2 : 0;
  }
  const file = paths(ctx).robots;
  const { positional, options, unknown } = parseArgs(rest, ['repo', 'actions', 'expires', 'description', 'config']);
  if (unknown.length > 0) {
    err(`unknown option ${unknown.join(' ')}\n\n${ROBOT_HELP}`);
    return 2;
  }
  const name = positional[0];
  switch (command) {
    case 'create': {
      if (!name || positional.length !== 1) return usage(err, ROBOT_HELP);
      if (!ROBOT_NAME.test(name)) {
        err(`invalid robot name ${JSON.stringify(name)}: use lowercase letters, digits and . _ -\n`);
        return 2;
      }
      const repositories = options.get('repo') ?? [];
      if (repositories.length === 0) {
        err('a robot needs at least one --repo <glob>\n');
        return 2;
      }
      const actions = (options.get('actions') ?? ['pull'])
        .flatMap((a) => a.split(','))
        .map((a) => a.trim())
        .filter((a) => a !== '');
      const bad = actions.filter((a) => !ACTIONS.has(a));
      if (actions.length === 0 || bad.length > 0) {
        err(`invalid actions ${bad.join(',')}: use pull, push, delete or *\n`);
        return 2;
      }
      let expiresAt: Date | undefined;
      const exp = options.get('expires')?.at(-1);
      if (exp !== undefined) {
        expiresAt = parseExpiry(exp);
        if (!expiresAt) {
          err(`invalid --expires ${JSON.stringify(exp)}: use <days>d or an ISO date\n`);
          return 2;
        }
      }
      const { robot, secret } = await createRobot(file, { name, repositories, actions, expiresAt, description: options.get('description')?.at(-1) });
      out(`created robot ${robot.name}\n`);
      out(`username: ${ROBOT_PREFIX}${robot.name}\n`);
      out(`secret (shown once): ${secret}\n`);
      out(`repositories: ${robot.repositories.join(' ')}  actions: ${robot.actions.join(',')}  expires: ${robot.expiresAt ?? 'never'}\n`);
      return 0;
    }
    case 'revoke': {
      if (!name || positional.length !== 1) return usage(err, ROBOT_HELP);
      if (!(await revokeRobot(file, name))) {
        err(`no robot ${name}\n`);
        return 1;
      }
      out(`revoked robot ${name}\n`);
      return 0;
    }
    case 'list': {
      for (const r of await listRobots(file)) {
        const state = isExpired(r) ? ' (expired)' : '';
        out(
          `${ROBOT_PREFIX}${r.name}\t${r.repositories.join(' ')}\t${r.actions.join(',')}\texpires ${r.expiresAt ?? 'never'}${state}${r.description ? `\t${r.description}` : ''}\n`,
        );
      }
      return 0;
    }
    default:
      return usage(err, ROBOT_HELP);
  }
}

/** `berth key rotate`: rotates the generated signing key on disk; servers follow without restart. */
export async function runKeyCommand(args: string[], ctx: CliContext): Promise<number> {
  const { out, err } = io(ctx);
  args = parseArgs(args, ['config']).positional.concat(parseArgs(args, ['config']).unknown);
  if (args[0] !== 'rotate' || args.length !== 1) {
    (args[0] === '--help' || args[0] === 'help' ? out : err)(KEY_HELP);
    return args[0] === '--help' || args[0] === 'help' ? 0 : 2;
  }
  const config = authConfigSchema.parse(ctx.auth ?? {});
  const keys = new KeyStore({
    keyDir: paths(ctx).keyDir,
    algorithm: config.signing.algorithm,
    keyFile: config.signing.keyFile,
    retainSeconds: Math.max(config.tokenTtlSeconds, config.refreshTokenTtlSeconds) + config.clockToleranceSeconds,
  });
  try {
    await keys.init();
    const kid = await keys.rotate();
    out(`new signing key ${kid}\n`);
    return 0;
  } catch (e) {
    err(`${(e as Error).message}\n`);
    return 1;
  }
}
