/** What /api/v1/info says about this registry (public: no names, nothing secret). */
export interface RegistryInfo {
  version?: string;
  deleteEnabled: boolean;
  readOnly: boolean;
  host: string;
}

let cached: Promise<RegistryInfo> | undefined;

export function registryInfo(): Promise<RegistryInfo> {
  cached ??= fetch('/api/v1/info', { headers: { Accept: 'application/json' } })
    .then(async (res) => (res.ok ? ((await res.json()) as Record<string, unknown>) : {}))
    .catch(() => ({}) as Record<string, unknown>)
    .then((body) => {
      const publicUrl = typeof body.publicUrl === 'string' ? body.publicUrl : undefined;
      return {
        ...(typeof body.version === 'string' ? { version: body.version } : {}),
        deleteEnabled: body.deleteEnabled !== false,
        readOnly: body.readOnly === true,
        // The name clients pull by: the configured public URL's host, or the one this page came from.
        host: publicUrl ? new URL(publicUrl).host : location.host,
      };
    });
  return cached;
}
