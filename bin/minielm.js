#!/usr/bin/env node
// Runs the TypeScript sources in a checkout (lib/ is there and tsx, a devDependency, is installed), the
// compiled CLI otherwise (the published package ships dist/lib, not lib/). A checkout prefers its sources
// so that a dist/ left behind by `npm pack` never runs older code than lib/.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

// `minielm info | head`: a reader that closes the pipe early ends the output, not in a crash (EPIPE).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'lib', 'cli', 'main.js');
const source = join(root, 'lib', 'cli', 'main.ts');

async function loadTsx() {
  try {
    return await import('tsx/esm/api');
  } catch (err) {
    if (existsSync(compiled)) return null;
    throw err;
  }
}

const tsx = existsSync(source) ? await loadTsx() : null;
if (tsx) {
  tsx.register();
  await import(pathToFileURL(source).href);
} else {
  await import(pathToFileURL(compiled).href);
}
