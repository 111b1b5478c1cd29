// Builds the engine's C++ sources outside node-gyp, for the sanitizer and fuzzing builds
// (scripts/native-asan.js, scripts/fuzz.js): every native/**/*.cc except the N-API layer (native/napi/*.cc),
// the standalone programs (native/tests/, native/fuzz/) and CUDA, so a source the addon gains is picked up
// without editing a list here. Objects are cached next to a make-style dependency file (-MMD) and rebuilt
// when the source, a header it includes or the flags change. With clang the sources are compiled from a
// rewritten copy of native/ (see sourceRoot).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The engine's sources, relative to the repository root, sorted. */
export function engineSources() {
  const out = [];
  const walk = (dir) => {
    for (const name of readdirSync(join(root, dir)).sort()) {
      const rel = `${dir}/${name}`;
      if (statSync(join(root, rel)).isDirectory()) {
        if (!['napi', 'tests', 'fuzz', 'cuda'].includes(name)) walk(rel);
      } else if (name.endsWith('.cc')) out.push(rel);
    }
  };
  walk('native');
  return out;
}

/** The first of `names` that runs with --version, or undefined. */
export function findCompiler(names) {
  for (const name of names) {
    const r = spawnSync(name, ['--version'], { encoding: 'utf8' });
    if (!r.error && r.status === 0) return name;
  }
  return undefined;
}

export const isClang = (compiler) => /clang/.test(compiler);

// The AVX2 / AVX-512 kernels are compiled through `#pragma GCC target(...)` regions, which clang ignores.
// For clang the sources are built from a copy of native/ in which each region becomes the equivalent
// `#pragma clang attribute push(__attribute__((target(...))), apply_to = function)` ... `pop`, so the
// portable code around the kernels stays portable, as with gcc. Unchanged files keep their mtimes.
function clangSource(text) {
  const stack = [];
  return text
    .split('\n')
    .map((line) => {
      const m = /^\s*#\s*pragma\s+GCC\s+(push_options|pop_options|target\s*\((.*)\))\s*$/.exec(line);
      if (!m) return line;
      if (m[1] === 'push_options') {
        stack.push(false);
        return '';
      }
      if (m[1] === 'pop_options') return stack.pop() ? '#pragma clang attribute pop' : '';
      if (stack.length === 0) stack.push(false);
      stack[stack.length - 1] = true;
      return `#pragma clang attribute push(__attribute__((target(${m[2]}))), apply_to = function)`;
    })
    .join('\n');
}

/** The directory to compile native/ from: the repository itself, or for clang a rewritten copy. */
export function sourceRoot(compiler, outDir) {
  if (!isClang(compiler)) return root;
  const shadow = join(outDir, 'src');
  const copy = (dir) => {
    for (const name of readdirSync(join(root, dir))) {
      const rel = `${dir}/${name}`;
      if (statSync(join(root, rel)).isDirectory()) {
        if (name !== 'corpus') copy(rel);
      } else if (/\.(cc|h)$/.test(name)) {
        const text = clangSource(readFileSync(join(root, rel), 'utf8'));
        const dst = join(shadow, rel);
        if (!existsSync(dst) || readFileSync(dst, 'utf8') !== text) {
          mkdirSync(dirname(dst), { recursive: true });
          writeFileSync(dst, text);
        }
      }
    }
  };
  copy('native');
  return shadow;
}

function upToDate(obj, dep, stamp, flagsKey) {
  if (!existsSync(obj) || !existsSync(dep) || !existsSync(stamp)) return false;
  if (readFileSync(stamp, 'utf8') !== flagsKey) return false;
  const t = statSync(obj).mtimeMs;
  const deps = readFileSync(dep, 'utf8').replace(/\\\n/g, ' ').split(/\s+/).slice(1).filter((d) => d && !d.endsWith(':'));
  return deps.every((d) => existsSync(d) && statSync(d).mtimeMs <= t);
}

function run(cmd, args, log) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => {
      if (out.trim()) log(out.trimEnd());
      resolve(code === 0);
    });
    child.on('error', (err) => {
      log(String(err));
      resolve(false);
    });
  });
}

/**
 * Compiles `sources` into objects under `outDir` (at most `jobs` compilers at once) and returns their
 * paths, or throws with the compiler's output when one fails.
 */
export async function compileAll({ compiler, flags, sources, outDir, jobs = 2, log = console.log }) {
  const objects = [];
  const todo = [];
  const from = sourceRoot(compiler, outDir);
  for (const src of sources) {
    const obj = join(outDir, 'obj', src.replace(/\.cc$/, '.o'));
    const args = [...flags, '-MMD', '-MF', `${obj}.d`, '-c', join(from, src), '-o', obj];
    const key = createHash('sha1').update([compiler, ...flags, from].join(' ')).digest('hex');
    objects.push(obj);
    if (!upToDate(obj, `${obj}.d`, `${obj}.flags`, key)) todo.push({ src, obj, args, key });
  }
  let failed = null;
  let next = 0;
  const worker = async () => {
    while (next < todo.length && !failed) {
      const t = todo[next++];
      mkdirSync(dirname(t.obj), { recursive: true });
      log(`  CXX ${t.src}`);
      const lines = [];
      const ok = await run(compiler, t.args, (s) => lines.push(s));
      if (lines.length) log(lines.join('\n'));
      if (ok) writeFileSync(`${t.obj}.flags`, t.key);
      else failed = t.src;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  if (failed) throw new Error(`${compiler} failed on ${failed} (see the output above)`);
  return objects;
}

/** Links `inputs` (sources or objects) into `output`; throws with the linker's output on failure. */
export async function link({ compiler, flags, inputs, output, libs = ['-lpthread', '-ldl'], log = console.log }) {
  mkdirSync(dirname(output), { recursive: true });
  log(`  LINK ${relative(root, output)}`);
  const ok = await run(compiler, [...flags, ...inputs, '-o', output, ...libs], log);
  if (!ok) throw new Error(`linking ${relative(root, output)} failed (see the output above)`);
  return output;
}
