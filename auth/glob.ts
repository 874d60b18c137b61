const cache = new Map<string, RegExp>();

/**
 * Compiles a repository glob: `**` matches anything including `/`, `*` anything within one path
 * segment, `?` one character other than `/`. Everything else is literal. A trailing `/**` also
 * matches the bare prefix, so `team/**` covers `team` itself.
 */
export function globToRegExp(glob: string): RegExp {
  const hit = cache.get(glob);
  if (hit) return hit;
  let src = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (src.endsWith('/') && i === glob.length - 1) {
          src = `${src.slice(0, -1)}(?:/.*)?`;
        } else {
          src += '.*';
        }
      } else {
        src += '[^/]*';
      }
    } else if (c === '?') {
      src += '[^/]';
    } else {
      src += c.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
    }
  }
  const re = new RegExp(`^${src}$`);
  if (cache.size > 10_000) cache.clear();
  cache.set(glob, re);
  return re;
}

export function globMatch(glob: string, value: string): boolean {
  return globToRegExp(glob).test(value);
}
