// The packages only optional features need (the BPE trainer's `tokenizers`, the ONNX cross-encoder's
// `@huggingface/transformers`) are optional peer dependencies, never plain ones, and a missing one becomes a
// MinielmError naming the package to add, while any other load failure keeps its own error. Fast; the real
// install of the packed tarball is test/package-install.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MinielmError, missingOptionalDependency } from '../lib/errors.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
};
const OPTIONAL = ['@huggingface/transformers', 'tokenizers'];

test('optional features\' packages are optional peer dependencies (and devDependencies for this repository)', () => {
  for (const name of OPTIONAL) {
    assert.not.ok(name in pkg.dependencies, `${name} is a plain dependency`);
    assert.ok(pkg.peerDependencies?.[name], `${name} is not a peer dependency`);
    assert.is(pkg.peerDependenciesMeta?.[name]?.optional, true, `${name} is not an optional peer`);
    assert.is(pkg.devDependencies[name], pkg.peerDependencies?.[name], `${name}: devDependency and peer range differ`);
  }
});

test('no package a plain install brings runs an install script but minielm itself (package-lock.json)', () => {
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }> };
  const production = Object.entries(lock.packages).filter(([path, entry]) => path !== '' && !entry.dev);
  assert.ok(production.length > 0, 'package-lock.json lists no production package');
  for (const name of Object.keys(pkg.dependencies)) assert.ok(production.some(([path]) => path === `node_modules/${name}`), `${name} is not a production entry of the lock file`);
  const withScripts = production.filter(([, entry]) => entry.hasInstallScript).map(([path]) => path);
  assert.equal(withScripts, [], 'production packages with install scripts');
  for (const name of OPTIONAL) assert.is(lock.packages[`node_modules/${name}`]?.dev, true, `${name} is not dev-only in the lock file`);
});

test('a missing optional package becomes MINIELM_NOT_FOUND naming it (ESM import and require.resolve)', async () => {
  const absent = '@minielm-test/absent-package';
  let esm: unknown;
  try {
    await import(absent);
  } catch (err) {
    esm = missingOptionalDependency(err, absent, 'The feature');
  }
  assert.instance(esm, MinielmError);
  assert.is((esm as MinielmError).code, 'MINIELM_NOT_FOUND');
  assert.match((esm as MinielmError).message, /^The feature needs the optional package "@minielm-test\/absent-package"/);
  assert.match((esm as MinielmError).message, /`npm install @minielm-test\/absent-package`/);
  let cjs: unknown;
  try {
    createRequire(import.meta.url).resolve(absent);
  } catch (err) {
    cjs = missingOptionalDependency(err, absent, 'The feature');
  }
  assert.instance(cjs, MinielmError);
  assert.is((cjs as MinielmError).code, 'MINIELM_NOT_FOUND');
  assert.ok((cjs as MinielmError).cause, 'the original error is the cause');
});

test('other failures keep their own error: a dependency of the package missing, or the package failing to load', () => {
  const nested = Object.assign(new Error("Cannot find package 'onnxruntime-node' imported from /app/node_modules/@huggingface/transformers/dist/transformers.node.mjs"), { code: 'ERR_MODULE_NOT_FOUND' });
  assert.is(missingOptionalDependency(nested, '@huggingface/transformers', 'x'), nested);
  const broken = new Error('libonnxruntime.so.1: cannot open shared object file');
  assert.is(missingOptionalDependency(broken, '@huggingface/transformers', 'x'), broken);
  assert.is(missingOptionalDependency('a string', 'tokenizers', 'x'), 'a string');
  assert.is(missingOptionalDependency(null, 'tokenizers', 'x'), null);
});

test.run();
