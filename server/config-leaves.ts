import type { z } from 'zod';

/**
 * Flattens a zod object schema into its settable keys, so environment overrides and the
 * configuration reference are derived from the schema itself and can never drift from it.
 */

export type LeafKind = 'string' | 'number' | 'boolean' | 'enum' | 'json';

export interface ConfigLeaf {
  path: string[];
  envName: string;
  kind: LeafKind;
  enumValues?: string[];
  /** The value used when the key is absent, if any. */
  defaultValue?: unknown;
  required: boolean;
  description?: string;
}

interface ZodDefLike {
  type: string;
  innerType?: ZodLike;
  in?: ZodLike;
  shape?: Record<string, ZodLike>;
  entries?: Record<string, string | number>;
  values?: unknown[];
  options?: ZodLike[];
  defaultValue?: unknown;
}
interface ZodLike {
  _zod: { def: ZodDefLike };
  description?: string;
}

export function envNameFor(path: string[]): string {
  return `BERTH_${path.map((segment) => segment.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

interface Unwrapped {
  core: ZodLike;
  defaultValue?: unknown;
  hasDefault: boolean;
  optional: boolean;
  description?: string | undefined;
}

/** Peels optional/default/prefault/nullable/pipe wrappers, remembering what they said. */
function unwrap(schema: ZodLike): Unwrapped {
  let current = schema;
  const out: Unwrapped = { core: schema, hasDefault: false, optional: false };
  for (;;) {
    out.description ??= current.description;
    const def = current._zod.def;
    if ((def.type === 'default' || def.type === 'prefault') && def.innerType) {
      if (!out.hasDefault) {
        out.hasDefault = true;
        out.defaultValue = def.defaultValue;
      }
      current = def.innerType;
    } else if ((def.type === 'optional' || def.type === 'nullable' || def.type === 'exact_optional') && def.innerType) {
      out.optional = true;
      current = def.innerType;
    } else if (def.type === 'pipe' && def.in) {
      current = def.in;
    } else {
      out.core = current;
      return out;
    }
  }
}

function literalValues(schema: ZodLike): string[] | undefined {
  const def = schema._zod.def;
  if (def.type === 'enum' && def.entries) return Object.values(def.entries).map(String);
  if (def.type === 'literal' && def.values) return def.values.map(String);
  if (def.type === 'union' && def.options) {
    const all: string[] = [];
    for (const option of def.options) {
      const values = literalValues(unwrap(option).core);
      if (!values) return undefined;
      all.push(...values);
    }
    return all;
  }
  return undefined;
}

export function configLeaves(schema: z.ZodType): ConfigLeaf[] {
  const leaves: ConfigLeaf[] = [];
  walk(schema as unknown as ZodLike, [], leaves);
  return leaves;
}

function walk(schema: ZodLike, path: string[], leaves: ConfigLeaf[]): void {
  const info = unwrap(schema);
  const def = info.core._zod.def;
  // Required within its section: an optional section's required keys matter only once it is present.
  const required = !info.optional && !info.hasDefault;
  if (def.type === 'object' && def.shape) {
    for (const [key, child] of Object.entries(def.shape)) walk(child, [...path, key], leaves);
    return;
  }
  const leaf: ConfigLeaf = { path, envName: envNameFor(path), kind: 'json', required };
  if (info.description) leaf.description = info.description;
  if (info.hasDefault) leaf.defaultValue = info.defaultValue;
  const values = literalValues(info.core);
  if (values) {
    leaf.kind = 'enum';
    leaf.enumValues = values;
  } else if (def.type === 'string') leaf.kind = 'string';
  else if (def.type === 'number') leaf.kind = 'number';
  else if (def.type === 'boolean') leaf.kind = 'boolean';
  leaves.push(leaf);
}

/** Turns an environment string into the JSON value the schema expects; returns an error message on failure. */
export function coerceEnvValue(leaf: ConfigLeaf, text: string): { value: unknown } | { problem: string } {
  switch (leaf.kind) {
    case 'string':
      return { value: text };
    case 'number': {
      if (!/^-?\d+(\.\d+)?$/.test(text.trim())) return { problem: `expected a number, got ${JSON.stringify(text)}` };
      return { value: Number(text) };
    }
    case 'boolean': {
      const lowered = text.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(lowered)) return { value: true };
      if (['false', '0', 'no', 'off'].includes(lowered)) return { value: false };
      return { problem: `expected true or false, got ${JSON.stringify(text)}` };
    }
    case 'enum': {
      const values = leaf.enumValues ?? [];
      if (values.includes(text)) return { value: text };
      // Numeric literals arrive as strings from the environment.
      const numeric = Number(text);
      if (text.trim() !== '' && values.includes(String(numeric)) && !Number.isNaN(numeric)) return { value: numeric };
      return { problem: `expected one of ${values.map((v) => `'${v}'`).join(', ')}, got ${JSON.stringify(text)}` };
    }
    case 'json': {
      // Lists and maps are given as JSON; anything else is taken as a plain string.
      try {
        return { value: JSON.parse(text) as unknown };
      } catch {
        return { value: text };
      }
    }
  }
}
