// binding.gyp (node-gyp: npm install, prebuildify) and CMakeLists.txt (cmake-js, CUDA) must build the same
// C++ sources; this fails as soon as one list changes without the other.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');

function gypSources(): string[] {
  const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')) as { targets: { target_name: string; sources: string[] }[] };
  return gyp.targets.find((t) => t.target_name === 'minielm')!.sources.slice().sort();
}

function cmakeSources(): string[] {
  const text = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');
  const m = /set\(MINIELM_SOURCES\s+([^)]*)\)/.exec(text);
  assert.ok(m, 'CMakeLists.txt defines MINIELM_SOURCES');
  return m![1].split(/\s+/).filter((s) => s && !s.startsWith('#')).sort();
}

function cppFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(join(root, rel)).isDirectory()) {
      if (name === 'cuda' || name === 'tests' || name === 'fuzz') continue; // CUDA is CMake-only; native tests and fuzz targets are standalone programs
      out.push(...cppFiles(rel));
    } else if (name.endsWith('.cc')) out.push(rel);
  }
  return out;
}

test('binding.gyp and CMakeLists.txt list the same sources', () => {
  assert.equal(gypSources(), cmakeSources());
});

test('every C++ source under native/ is built (nothing forgotten in both lists)', () => {
  assert.equal(cppFiles('native').sort(), gypSources());
});

test('package.json declares what cmake-js and node-gyp-build need offline', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  assert.equal((pkg.binary as { napi_versions: number[] }).napi_versions, [8]);
  assert.is(pkg.type, 'module');
  assert.is((pkg.scripts as Record<string, string>).install, 'node-gyp-build');
  const npmrc = readFileSync(join(root, '.npmrc'), 'utf8');
  assert.match(npmrc, /onnxruntime-node-install=skip/);
});

test.run();
