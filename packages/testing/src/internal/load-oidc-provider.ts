import type * as OidcProvider from 'oidc-provider';

/** What the test server needs from the oidc-provider package at runtime. */
export interface OidcProviderModule {
  Provider: typeof OidcProvider.Provider;
  errors: typeof OidcProvider.errors;
}

/*
 * The package entry point (`oidc-provider`, lib/index.js) prints "oidc-provider WARNING: Unsupported
 * runtime" through console.warn as a side effect of being imported on any Node.js release older than
 * 22 LTS, and Tessera supports Node.js >= 20.19. The Provider class and the error classes are loaded
 * from their own modules instead, which have no import-time side effects; the package has no
 * "exports" map, so these paths are public to Node.js. The specifiers are held in variables so that
 * TypeScript does not try to resolve them; the types come from @types/oidc-provider.
 */
const PROVIDER_MODULE: string = 'oidc-provider/lib/provider.js';
const ERRORS_MODULE: string = 'oidc-provider/lib/helpers/errors.js';

/**
 * Loads oidc-provider's Provider class and error classes without the package entry point's
 * import-time console output.
 */
export async function loadOidcProvider(): Promise<OidcProviderModule> {
  const [providerModule, errorsModule] = (await Promise.all([
    import(PROVIDER_MODULE),
    import(ERRORS_MODULE),
  ])) as [Pick<OidcProviderModule, 'Provider'>, OidcProviderModule['errors']];
  return { Provider: providerModule.Provider, errors: errorsModule };
}
