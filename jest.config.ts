import type { Config } from 'jest';

/**
 * Jest in native ESM mode (run through `node --experimental-vm-modules`, see the root `test`
 * script) with ts-jest transpiling each TypeScript file. Type checking is `pnpm typecheck`'s job,
 * so ts-jest only transpiles. Workspace packages resolve to their sources, so tests need no build.
 */
const config: Config = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  roots: ['<rootDir>/packages', '<rootDir>/examples'],
  testMatch: ['**/test/**/*.test.ts'],
  moduleNameMapper: {
    '^@tessera/(core|testing|store-redis|store-file|opentelemetry)$': '<rootDir>/packages/$1/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: '<rootDir>/tsconfig.tests.json' }],
  },
  testTimeout: 20_000,
  reporters: ['default', '<rootDir>/scripts/jest-summary-reporter.js'],
  ...(process.env.CI ? { maxWorkers: 2 } : {}),
};

export default config;
