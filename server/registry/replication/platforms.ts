// Platform filters of a replication rule ('linux/amd64', 'linux/arm64/v8'), normalised as containerd
// does so that a filter and an index entry written differently (aarch64, arm64 without a variant) still
// meet.

export interface Platform {
  os: string;
  architecture: string;
  /** '' when none is given (and the architecture has no default). */
  variant: string;
}

/** What an index entry's `platform` carries (other fields are ignored). */
export interface PlatformLike {
  os?: string | undefined;
  architecture?: string | undefined;
  variant?: string | undefined;
}

const PART = /^[a-z0-9_.-]+$/;

/** 'os/arch[/variant]' → a normalised platform; throws an Error saying what is wrong. */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3)
    throw new Error(`platform ${JSON.stringify(text)} must be os/architecture or os/architecture/variant, e.g. linux/amd64 or linux/arm64/v8`);
  for (const part of parts) {
    if (!PART.test(part.toLowerCase()))
      throw new Error(`platform ${JSON.stringify(text)} has an empty or malformed part: use letters, digits, '.', '_' and '-' between the slashes`);
  }
  const [os, architecture, variant = ''] = parts as [string, string, string?];
  return normalisePlatform({ os, architecture, variant });
}

/** containerd's normalisation: common aliases of an architecture, and the variant it implies when none is given. */
export function normalisePlatform(platform: PlatformLike): Platform {
  const os = (platform.os ?? '').toLowerCase();
  let architecture = (platform.architecture ?? '').toLowerCase();
  let variant = (platform.variant ?? '').toLowerCase();
  switch (architecture) {
    case 'i386':
      architecture = '386';
      variant = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      architecture = 'amd64';
      if (variant === 'v1') variant = '';
      break;
    case 'aarch64':
    case 'arm64':
      architecture = 'arm64';
      if (variant === '' || variant === '8') variant = 'v8';
      break;
    case 'armhf':
      architecture = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      architecture = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === '' || variant === '7') variant = 'v7';
      else if (variant === '5' || variant === '6' || variant === '8') variant = `v${variant}`;
      break;
  }
  return { os, architecture, variant };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter((part) => part !== '').join('/');
}

/**
 * Whether `candidate` (an index entry's platform) is what `filter` names. After normalisation the os and
 * architecture must be equal; a filter without a variant (linux/amd64) takes every variant of it.
 */
export function platformMatches(filter: Platform, candidate: PlatformLike): boolean {
  const c = normalisePlatform(candidate);
  return filter.os === c.os && filter.architecture === c.architecture && (filter.variant === '' || filter.variant === c.variant);
}
