import { z } from 'zod';

/** Authentication and authorization settings (see auth/). Placeholder until the auth issue lands. */
export const authConfigSchema = z.object({ enabled: z.boolean().default(false) }).strict();
export type AuthConfig = z.infer<typeof authConfigSchema>;
