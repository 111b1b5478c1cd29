// binding.gyp (node-gyp: npm install, prebuildify) and CMakeLists.txt (cmake-js, CUDA) must build the same
// C++ sources; this fails as soon as one list changes without the other.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
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
  // native/cuda/none.cc: the CUDA entry points of a build without CUDA (CMake swaps in the .cu files).
  assert.equal([...cppFiles('native'), 'native/cuda/none.cc'].sort(), gypSources());
});

test('CMakeLists.txt compiles every CUDA source of native/cuda/', () => {
  const text = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');
  const m = /set\(MINIELM_CUDA_SOURCES\s+([^)]*)\)/.exec(text);
  assert.ok(m, 'CMakeLists.txt defines MINIELM_CUDA_SOURCES');
  const listed = m![1].split(/\s+/).filter(Boolean).sort();
  const present = readdirSync(join(root, 'native', 'cuda')).filter((f) => f.endsWith('.cu')).map((f) => `native/cuda/${f}`).sort();
  assert.equal(listed, present);
});

test('package.json declares what cmake-js and node-gyp-build need offline', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  assert.equal((pkg.binary as { napi_versions: number[] }).napi_versions, [8]);
  assert.is(pkg.type, 'module');
  assert.is((pkg.scripts as Record<string, string>).install, 'node-gyp-build');
  // No project .npmrc: npm 11 warns about keys it does not know (onnxruntime-node's install switch was one).
  // npm >= 11.19 runs a dependency's install script only when package.json's allowScripts says so, and
  // onnxruntime-node's (pulled in by the devDependency @huggingface/transformers) would download CUDA
  // binaries: it is denied explicitly, the others are listed so that an install prints no warning.
  assert.not.ok(existsSync(join(root, '.npmrc')), 'a project .npmrc is back');
  const allow = (pkg.allowScripts ?? {}) as Record<string, boolean>;
  assert.is(allow['onnxruntime-node'], false, 'allowScripts must deny onnxruntime-node');
});

test.run();
