/**
 * `@tessera/store-file`: a crash-safe, encrypted {@link FileTokenStore} for one host.
 *
 * @packageDocumentation
 */
export { FileTokenStore } from './file-token-store.js';
export type { FileTokenStoreOptions } from './file-token-store.js';
