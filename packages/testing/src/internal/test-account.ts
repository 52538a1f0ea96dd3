import type { Account } from 'oidc-provider';

/** The end user of device and CIBA flows when a test names none. */
export const DEFAULT_ACCOUNT_ID = 'alice';

/**
 * Resolves any non-empty account id to a stable test account whose claims are `sub` (the id),
 * `email` (`<id>@example.com`, verified) and `name` (the id, capitalised).
 */
export function findTestAccount(accountId: string): Account | undefined {
  if (!accountId) return undefined;
  const name = accountId.charAt(0).toUpperCase() + accountId.slice(1);
  return {
    accountId,
    claims: () => ({ sub: accountId, email: `${accountId}@example.com`, email_verified: true, name }),
  };
}
