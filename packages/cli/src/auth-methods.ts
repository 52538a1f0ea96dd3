import type { ClientAuthMethod } from '@tessera/core';

/** The methods `--auth-method` accepts: those that need nothing but a client id and a secret. */
export const AUTH_METHODS = [
  'client_secret_basic',
  'client_secret_post',
  'client_secret_jwt',
  'none',
] as const satisfies readonly ClientAuthMethod[];
