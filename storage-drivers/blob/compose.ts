import type { BlobDriver } from './types.js';

/**
 * Writes the committed objects at `parts`, in order, as one object at `to` (replacing it), with the
 * driver's own `compose` where it has one (no bytes through this process) and otherwise by streaming
 * each part into a writer. Nothing becomes visible at `to` unless every part was copied.
 */
export async function composeParts(driver: BlobDriver, parts: readonly string[], to: string, signal?: AbortSignal): Promise<void> {
  if (driver.compose) await driver.compose([...parts], to);
  else await streamParts(driver, parts, to, signal);
}

/** The generic compose: each part streamed, in order, into one writer at `to`. */
export async function streamParts(driver: BlobDriver, parts: readonly string[], to: string, signal?: AbortSignal): Promise<void> {
  const writer = await driver.writer(to, signal ? { signal } : {});
  let committed = false;
  try {
    for (const part of parts) await writer.write(await driver.reader(part, { signal }), signal);
    await writer.commit();
    committed = true;
  } finally {
    if (!committed) await writer.cancel().catch(() => undefined);
  }
}
