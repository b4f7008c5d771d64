// One jest setup for every workspace: swc transforms TypeScript, and internal
// packages resolve to their sources so tests never depend on a stale build.
const path = require('node:path');

module.exports = (dir, overrides = {}) => ({
  rootDir: dir,
  testEnvironment: 'node',
  testMatch: ['**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  transform: { '^.+\\.(t|j)sx?$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }] },
  // thumbhash ships as ESM only
  transformIgnorePatterns: ['/node_modules/(?!thumbhash/)'],
  moduleNameMapper: {
    '^@imagegen/shared$': path.join(__dirname, 'packages/shared/src/index.ts'),
    '^@imagegen/shared/schemas$': path.join(__dirname, 'packages/shared/src/schemas/index.ts'),
    '^@imagegen/(api|worker)$': path.join(__dirname, 'apps/$1/src/index.ts'),
  },
  reporters: ['default', path.join(__dirname, 'scripts/jest-summary-reporter.js')],
  testTimeout: 30000,
  ...overrides,
});
