// In this repository the packages resolve to their sources; a user's project needs no config.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['tessera-source'] },
  ssr: { resolve: { conditions: ['tessera-source'] } },
  test: { include: ['*.test.ts'], watch: false },
});
