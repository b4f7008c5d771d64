#!/usr/bin/env node
// npm links a workspace's bin when it installs, before anything is built: this file is there to be
// linked, and runs the built CLI.
try {
  require.resolve('../dist/main.js');
} catch {
  console.error('imagegen: the CLI is not built yet; run `npm run build` first');
  process.exit(1);
}
require('../dist/main.js');
