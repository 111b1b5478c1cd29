// The package as a consumer gets it: `npm pack` (its prepack builds dist/ with tsc), then `npm install` of the
// tarball into a fresh temporary project with the npm registry as the only source. The consumer project is
// outside this checkout, so the repository's .npmrc (onnxruntime-node-install=skip) and the npm_config_*
// variables of a surrounding `npm test` do not reach it: it installs as a new user's project would, on a
// machine with nvcc. No dependency may bring an install script of its own (onnxruntime-node's downloads CUDA
// binaries when it sees nvcc): minielm's node-gyp-build is the only one, and it compiles the addon from the
// shipped sources against the local Node headers (no header download). Then (a) a plain ESM .mjs script imports
// minielm, loads a small rewriter trained here with the public API, rewrites a query, and sees the optional
// features (BPE training, the ONNX cross-encoder) fail with an error naming the package to add, and the
// `minielm` bin runs from dist/; (b) tsc type-checks a .ts consumer against the shipped declarations. Slow: the
// addon compiles in the fresh project (1-2 minutes on 2 cores). Skips loudly only where npm is missing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildQ2Q, generateSyntheticCatalog, syntheticIntentFilter, trainSft, trainTokenizer, Rewriter } from '../lib/index.ts';
import { skipLoudly } from './helpers/skip.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const SIZE_LIMIT_MB = 150;
const QUERY_COUNT = 3;

// npm settings a surrounding `npm test` exports (npm_config_*, from this repository's .npmrc among them) would
// make the consumer's install unlike a new user's; only where npm finds its registry, cache and config stays.
const KEEP_NPM_ENV = new Set(['npm_config_registry', 'npm_config_cache', 'npm_config_userconfig', 'npm_config_globalconfig', 'npm_config_cafile', 'npm_config_nodedir', 'npm_config_proxy', 'npm_config_https_proxy', 'npm_config_noproxy']);
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    const lower = k.toLowerCase();
    if (lower.startsWith('npm_') && !KEEP_NPM_ENV.has(lower)) continue;
    if (k === 'NODE_OPTIONS' || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  return { ...env, FORCE_COLOR: '0', NO_UPDATE_NOTIFIER: '1' };
}

function run(cmd: string, args: string[], cwd: string, timeoutS: number): SpawnSyncReturns<string> & { output: string; seconds: number } {
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout: timeoutS * 1000, maxBuffer: 64 * 1024 * 1024 });
  return Object.assign(r, { output: `${r.stdout ?? ''}${r.stderr ?? ''}`, seconds: (Date.now() - started) / 1000 });
}

function ok(r: ReturnType<typeof run>, what: string): void {
  if (r.error) assert.unreachable(`${what}: ${r.error.message}\n${r.output.slice(-4000)}`);
  assert.is(r.status, 0, `${what} exited with ${r.status ?? r.signal}:\n${r.output.slice(-4000)}`);
}

/** Every installed package folder under node_modules (scoped and nested ones included). */
function installedPackages(nodeModules: string): string[] {
  const out: string[] = [];
  if (!existsSync(nodeModules)) return out;
  for (const name of readdirSync(nodeModules)) {
    if (name.startsWith('.')) continue;
    const path = join(nodeModules, name);
    if (name.startsWith('@')) {
      for (const inner of readdirSync(path)) {
        out.push(join(path, inner));
        out.push(...installedPackages(join(path, inner, 'node_modules')));
      }
    } else {
      out.push(path);
      out.push(...installedPackages(join(path, 'node_modules')));
    }
  }
  return out;
}

/** Apparent size in bytes of a folder, links not followed. */
function folderBytes(path: string): number {
  const st = lstatSync(path);
  if (!st.isDirectory()) return st.size;
  let total = 0;
  for (const name of readdirSync(path)) total += folderBytes(join(path, name));
  return total;
}

const npmVersion = spawnSync('npm', ['--version'], { encoding: 'utf8', env: cleanEnv() });
const haveNpm = !npmVersion.error && npmVersion.status === 0;

let root = '';
let app = '';
let modelDir = '';
let tarball = '';
let expected: { text: string; logprob: number }[][] = [];
let queries: string[] = [];
const timings: string[] = [];

test.before(async () => {
  if (!haveNpm) return;
  root = await mkdtemp(join(tmpdir(), 'minielm-package-'));
  app = join(root, 'app');
  // A small rewriter trained and saved with the package's public API (as the serving suites' helper does).
  const started = Date.now();
  const catalog = generateSyntheticCatalog({ seed: 2, products: 300, queries: 300 });
  const q2q = await buildQ2Q(catalog.judgements, { k: 2, seed: 2, filter: syntheticIntentFilter(catalog) });
  const tokenizer = await trainTokenizer([...q2q.train.map((p) => p.query), ...[...catalog.products.values()].map((p) => p.title)], { vocabSize: 400 });
  const out = join(root, 'model');
  await trainSft({
    out, train: q2q.train, test: q2q.test.slice(0, 64), tokenizer, config: { vocab_size: tokenizer.vocabSize, n_ctx: 32, n_layer: 1, n_head: 2, n_embd: 32 },
    steps: 60, batchSize: 16, optimizer: { lr: 1e-2, warmupSteps: 2 }, evalEvery: 60, seed: 3, progress: false,
  });
  modelDir = join(out, 'best');
  queries = [...new Set(q2q.train.map((p) => p.query))].slice(0, QUERY_COUNT);
  // What this checkout's own build answers, to compare with the installed package.
  const local = await Rewriter.load(modelDir, { threads: 1 });
  expected = await local.rewriteBatch(queries, { n: 3 });
  await local.close();
  timings.push(`train ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

test.after(async () => {
  if (timings.length) console.log(`package-install timings: ${timings.join(', ')}`);
  if (root) await rm(root, { recursive: true, force: true });
});

if (!haveNpm) {
  const reason = `npm is not available (${npmVersion.error?.message ?? `exit ${npmVersion.status}`})`;
  for (const name of ['npm pack', 'npm install of the tarball', 'ESM consumer', 'TypeScript consumer']) skipLoudly(test, name, reason);
} else {
  test('npm pack ships dist/lib with declarations, the native sources, binding.gyp and bin/, and nothing the consumer does not need', async () => {
    const dest = join(root, 'pack');
    await mkdir(dest);
    const r = run('npm', ['pack', '--pack-destination', dest, '--loglevel', 'warn'], repo, 180);
    ok(r, 'npm pack');
    timings.push(`pack ${r.seconds.toFixed(1)} s`);
    const tgz = readdirSync(dest).filter((f) => f.endsWith('.tgz'));
    assert.equal(tgz.length, 1, `one tarball expected in ${dest}, found ${tgz.join(', ')}`);
    tarball = join(dest, tgz[0]);
    const list = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8' });
    assert.is(list.status, 0, `tar -tzf: ${list.stderr}`);
    const files = list.stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
    for (const f of ['package.json', 'README.md', 'binding.gyp', 'bin/minielm.js', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/serve/rewriter.d.ts', 'dist/lib/cli/main.js', 'native/napi/addon.cc']) {
      assert.ok(files.includes(f), `the tarball lacks ${f}`);
    }
    // Every source binding.gyp compiles is shipped.
    const gyp = readFileSync(join(repo, 'binding.gyp'), 'utf8');
    for (const [, src] of gyp.matchAll(/"(native\/[^"]+\.cc)"/g)) assert.ok(files.includes(src), `the tarball lacks ${src}, which binding.gyp compiles`);
    const unwanted = files.filter((f) => /^(lib|test|bench|scripts|runs|docs|build|node_modules)\//.test(f) || f.endsWith('.map') || f.endsWith('.tgz'));
    assert.equal(unwanted, [], 'files a consumer does not need');
    const bytes = folderBytes(tarball);
    assert.ok(bytes < 2 * 1024 * 1024, `tarball is ${bytes} bytes`);
  });

  test('npm install of the tarball into a fresh project: no install script but minielm\'s, no download, addon compiled, small', async () => {
    assert.ok(tarball, 'no tarball (npm pack failed)');
    await mkdir(app, { recursive: true });
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'minielm-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
    // --prefer-offline: packages already in npm's cache are taken from it, the others from the registry.
    const r = run('npm', ['install', tarball, '--foreground-scripts', '--no-audit', '--no-fund', '--prefer-offline'], app, 300);
    ok(r, 'npm install of the tarball');
    timings.push(`install ${r.seconds.toFixed(1)} s`);
    // node-gyp logs "gyp http GET <url>" when it downloads Node's headers; they must come from the local Node.
    assert.not.match(r.output, /gyp http GET|http GET https?:\/\/(?!registry\.npmjs\.org)/, 'the install downloaded something');
    const nodeModules = join(app, 'node_modules');
    const packages = installedPackages(nodeModules);
    const names = packages.map((p) => (JSON.parse(readFileSync(join(p, 'package.json'), 'utf8')) as { name: string }).name);
    for (const heavy of ['@huggingface/transformers', 'onnxruntime-node', 'onnxruntime-web', 'onnxruntime-common', 'sharp', 'tokenizers']) {
      assert.not.ok(names.includes(heavy), `${heavy} was installed (an optional feature's dependency)`);
    }
    // Only minielm may run code at install time (npm also runs `node-gyp rebuild` for a package with a binding.gyp).
    const withScripts = packages.filter((p) => {
      const pkg = JSON.parse(readFileSync(join(p, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
      return ['preinstall', 'install', 'postinstall'].some((s) => pkg.scripts?.[s]) || existsSync(join(p, 'binding.gyp'));
    });
    assert.equal(withScripts.map((p) => p.slice(nodeModules.length + 1)), ['minielm'], 'packages with install scripts');
    assert.ok(existsSync(join(nodeModules, 'minielm', 'build', 'Release', 'minielm.node')), 'the addon was not compiled in the fresh project');
    const mb = folderBytes(nodeModules) / (1024 * 1024);
    console.log(`package-install: ${names.length} packages, node_modules ${mb.toFixed(1)} MB (limit ${SIZE_LIMIT_MB} MB)`);
    assert.ok(mb <= SIZE_LIMIT_MB, `node_modules is ${mb.toFixed(1)} MB`);
  });

  test('(a) a plain ESM script imports minielm, loads the trained rewriter and rewrites; optional features name their package', async () => {
    assert.ok(existsSync(join(app, 'node_modules', 'minielm')), 'minielm is not installed (the install failed)');
    const script = `import { Rewriter, MinielmError, trainTokenizer, CrossEncoderScorer } from 'minielm';
const [dir, ...queries] = process.argv.slice(2);
const rewriter = await Rewriter.load(dir, { threads: 1 });
const rewrites = [];
for (const q of queries) rewrites.push(await rewriter.rewrite(q, { n: 3 }));
await rewriter.close();
async function failure(fn) {
  try { await fn(); return null; } catch (err) { return { minielm: err instanceof MinielmError, code: err.code, message: err.message }; }
}
const tokenizers = await failure(() => trainTokenizer(['gas lawn mower', 'cordless drill'], { vocabSize: 512 }));
const crossEncoder = await failure(() => CrossEncoderScorer.load(dir));
console.log(JSON.stringify({ resolved: import.meta.resolve('minielm'), rewrites, tokenizers, crossEncoder }));
`;
    await writeFile(join(app, 'rewrite.mjs'), script);
    const r = run(process.execPath, ['rewrite.mjs', modelDir, ...queries], app, 60);
    ok(r, 'node rewrite.mjs');
    const line = r.stdout.trim().split('\n').pop() ?? '';
    const got = JSON.parse(line) as {
      resolved: string;
      rewrites: { text: string; logprob: number }[][];
      tokenizers: { minielm: boolean; code: string; message: string } | null;
      crossEncoder: { minielm: boolean; code: string; message: string } | null;
    };
    assert.ok(fileURLToPath(got.resolved).startsWith(join(app, 'node_modules', 'minielm', 'dist', 'lib')), `minielm resolved to ${got.resolved}`);
    assert.is(got.rewrites.length, queries.length);
    got.rewrites.forEach((list, i) => {
      assert.ok(list.length > 0, `no rewrite of "${queries[i]}"`);
      for (const w of list) {
        assert.type(w.text, 'string');
        assert.ok(Number.isFinite(w.logprob) && w.logprob < 0, `logprob ${w.logprob}`);
        assert.is.not(w.text.toLowerCase(), queries[i].toLowerCase());
      }
      // The installed build decodes what this checkout's build decodes (same sources, beam search).
      assert.equal(list.map((w) => w.text), expected[i].map((w) => w.text), `rewrites of "${queries[i]}"`);
      list.forEach((w, j) => assert.ok(Math.abs(w.logprob - expected[i][j].logprob) < 1e-3, `logprob of "${w.text}": ${w.logprob} vs ${expected[i][j].logprob}`));
    });
    assert.ok(got.tokenizers, 'trainTokenizer worked without the tokenizers package');
    assert.ok(got.tokenizers.minielm, got.tokenizers.message);
    assert.is(got.tokenizers.code, 'MINIELM_NOT_FOUND');
    assert.match(got.tokenizers.message, /npm install tokenizers\b/);
    assert.ok(got.crossEncoder, 'CrossEncoderScorer.load worked without @huggingface/transformers');
    assert.ok(got.crossEncoder.minielm, got.crossEncoder.message);
    assert.is(got.crossEncoder.code, 'MINIELM_NOT_FOUND');
    assert.match(got.crossEncoder.message, /npm install @huggingface\/transformers\b/);
    // The CLI runs from dist/ (no tsx, no lib/ in the package).
    const cli = run(join(app, 'node_modules', '.bin', 'minielm'), ['--help'], app, 60);
    ok(cli, 'minielm --help');
    assert.match(cli.output, /Usage: minielm <command>/);
  });

  test('(b) tsc type-checks a TypeScript consumer against the shipped declarations', async () => {
    assert.ok(existsSync(join(app, 'node_modules', 'minielm', 'dist', 'lib', 'index.d.ts')), 'minielm is not installed (the install failed)');
    await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true,
        // The shipped .d.ts files (and those of minielm's dependencies) are checked too.
        skipLibCheck: false,
        typeRoots: [join(repo, 'node_modules', '@types')], types: ['node'],
      },
      files: ['consumer.ts'],
    }, null, 2));
    await writeFile(join(app, 'consumer.ts'), `import { createServer } from 'node:http';
import { Rewriter, MinielmError, createRewriteHandler, generate, trainSft, Bm25Retriever, type Rewrite, type RewriterOptions, type RewriteOptions, type Expansion } from 'minielm';

const options: RewriterOptions = { maxBatch: 16, maxWaitMs: 2, cacheSize: 128, queueLimit: 64 };
const rewriter: Rewriter = await Rewriter.load('model', options);
const decode: RewriteOptions = { n: 5, strategy: 'sample', seed: 1, temperature: 0.8 };
const rewrites: Rewrite[] = await rewriter.rewrite('gas mowe', decode);
const first: string | undefined = rewrites[0]?.text;
const logprob: number = rewrites[0].logprob;
const batch: Rewrite[][] = await rewriter.rewriteBatch(['a', 'b'], { n: 2 });
const retriever = new Bm25Retriever();
const expansion: Expansion = await rewriter.expand('gas mowe', retriever, { n: 3, k: 5, merge: 'rrf' });
createServer(createRewriteHandler(rewriter, { retriever })).listen(0);
try {
  await rewriter.close();
} catch (err) {
  if (err instanceof MinielmError) console.log(err.code satisfies string);
}
// The declarations are real types, not any: these must be errors.
// @ts-expect-error: n is a number
await rewriter.rewrite('q', { n: 'five' });
// @ts-expect-error: no such strategy
await rewriter.rewrite('q', { strategy: 'nucleus' });
// @ts-expect-error: Rewriter.load takes a folder path
await Rewriter.load(42);
console.log(first, logprob, batch.length, expansion, typeof generate, typeof trainSft);
`);
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], app, 120);
    timings.push(`tsc ${r.seconds.toFixed(1)} s`);
    ok(r, 'tsc on the consumer');
  });
}

test.run();
