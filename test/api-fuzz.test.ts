// API fuzzing in CI: every property of test/fuzz/ (fast-check, fixed seed) with a few hundred to a few thousand
// generated inputs per public entry, each of which must end in a result or a MinielmError with a known code (a
// 2xx / 4xx over HTTP), the process staying up and a valid call working afterwards. The full run (>= 10^4
// inputs per entry) is `node --import tsx test/fuzz/run-js.ts` (npm run fuzz). Then the regression tests of
// the bugs the fuzzing found, each fixed in lib/ (those named "lead: ..." were in lib/model/model.ts and
// lib/model/safetensors.ts, fixed there after the fuzzing found them).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { MinielmError, describeValue } from '../lib/errors.ts';
import { Model } from '../lib/model/model.ts';
import { parseSafetensors } from '../lib/model/safetensors.ts';
import { generate, WordConstraint } from '../lib/model/generate.ts';
import { buildPreferenceBatch, distillStep, dpoStep, sequenceLogProbs } from '../lib/model/align.ts';
import { Tokenizer } from '../lib/tokenizer/tokenizer.ts';
import { loadRelevanceTable } from '../lib/data/table.ts';
import { loadEsci } from '../lib/data/esci.ts';
import { HOMEDEPOT_LABELS, validateLabelMap } from '../lib/data/labels.ts';
import { Rewriter } from '../lib/serve/rewriter.ts';
import { createRewriteHandler, startRewriteServer } from '../lib/serve/http.ts';
import { PROPERTIES } from './fuzz/index.ts';
import { formatResult } from './fuzz/harness.ts';
import { cleanupFixtures, rewriterFolder, sharedModel, TINY, tinyTokenizerFiles } from './fuzz/fixtures.ts';

const SEED = 20261201;
let dir = '';

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minielm-api-fuzz-'));
});
test.after(async () => {
  await cleanupFixtures();
  await rm(dir, { recursive: true, force: true });
});

async function rejects(call: () => unknown, code: string, pattern?: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await call();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected a MinielmError ${code}, got no error`);
  assert.ok(caught instanceof MinielmError, `expected a MinielmError ${code}, got ${(caught as Error)?.constructor?.name}: ${(caught as Error)?.message}`);
  assert.is((caught as MinielmError).code, code, (caught as MinielmError).message);
  if (pattern) assert.match((caught as MinielmError).message, pattern);
}

// ---- the properties ----

const known: string[] = [];
for (const p of PROPERTIES) {
  test(`fuzz ${p.entry}: ${p.ci} inputs end in a result or a MinielmError, and a valid call still works`, async () => {
    const r = await p.run(p.ci, { seed: SEED });
    if (r.known > 0) known.push(`${p.entry}: ${r.known} inputs met known bugs (${[...new Set(r.kinds.filter((k) => k.known).map((k) => k.known))].join(', ')})`);
    assert.is(r.runs, p.ci, `${p.entry}: ran ${r.runs} inputs`);
    assert.is(r.failures, 0, `\n${formatResult(r)}`);
    assert.is(r.sanity, 'ok', `${p.entry}: the valid call after the property failed: ${r.sanity}`);
  });
}
test('fuzz: known bugs met (only the third-party hyparquet hang remains)', () => {
  if (known.length) console.warn(`\n!!! the fuzzing met known bugs !!!\n  ${known.join('\n  ')}\n`);
  assert.ok(true);
});

// ---- regression tests: bugs found by fuzzing, fixed in lib/ ----

test('describeValue never throws and keeps messages short', () => {
  assert.is(describeValue(Object.create(null)), 'an object');
  assert.is(describeValue(Symbol('x')), 'a symbol');
  assert.is(describeValue([Symbol('x'), Object.create(null)]), 'an array of 2');
  assert.is(describeValue(12n), '12n');
  assert.is(describeValue('a'.repeat(100)), JSON.stringify(`${'a'.repeat(40)}...`));
  assert.is(describeValue(new Float32Array(2)), 'a Float32Array');
});

test('generate refuses a model that is not a Model (was a TypeError reading config)', async () => {
  await rejects(() => generate(undefined as unknown as Model, [[1]], { maxNewTokens: 1 }), 'MINIELM_INVALID_ARGUMENT', /generate needs a Model/);
  await rejects(() => generate({ config: TINY } as unknown as Model, [[1]], { maxNewTokens: 1 }), 'MINIELM_INVALID_ARGUMENT');
});

test('generate names option values that String() cannot print (was a TypeError from String(Object.create(null)))', async () => {
  const m = await sharedModel('regression');
  await rejects(() => generate(m, [[1]], { maxNewTokens: Object.create(null) as number }), 'MINIELM_INVALID_ARGUMENT', /maxNewTokens must be an integer >= 1, got an object/);
  await rejects(() => generate(m, [[1]], { maxNewTokens: 1, temperature: [Symbol('t')] as unknown as number }), 'MINIELM_INVALID_ARGUMENT', /temperature .* got an array of 1/);
  await rejects(() => generate(m, [[1, Object.create(null) as number]], { maxNewTokens: 1 }), 'MINIELM_INVALID_ARGUMENT', /prompt 0 token 1 = an object/);
});

test('WordConstraint.create refuses special ids and words that are not iterable (was "special is not iterable")', async () => {
  const bytes = [Uint8Array.of(97), Uint8Array.of(98)];
  await rejects(() => WordConstraint.create(bytes, 5 as unknown as number[], ['ab']), 'MINIELM_INVALID_ARGUMENT', /special must be an iterable/);
  await rejects(() => WordConstraint.create(bytes, [], undefined as unknown as string[]), 'MINIELM_INVALID_ARGUMENT', /words must be an iterable/);
  await rejects(() => WordConstraint.create(bytes, [], 'ab'), 'MINIELM_INVALID_ARGUMENT', /words must be an iterable/);
  await rejects(() => WordConstraint.create(bytes, [Object.create(null) as number], ['ab']), 'MINIELM_INVALID_ARGUMENT', /special token id an object/);
});

test('distillStep / dpoStep name unprintable option values (was a TypeError from String())', async () => {
  const [s, t] = await Promise.all([sharedModel('regression'), sharedModel('regression-teacher', TINY, 2)]);
  await rejects(() => distillStep(s, t, { batch: 1, seq: 2, tokens: [1, 2] }, { temperature: Object.create(null) as number }, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT', /options\.temperature .* got an object/);
  await rejects(() => distillStep(s, t, { batch: 1, seq: 2, tokens: [1, 2] }, { loss: Symbol('kl') as unknown as 'jsd' }, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT', /options\.loss .* got a symbol/);
  await rejects(() => dpoStep(s, [{ prompt: [1], chosen: [2], rejected: [3] }], { labelSmoothing: Object.create(null) as number }, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT', /labelSmoothing/);
  await rejects(() => dpoStep(s, [{ prompt: [1], chosen: [2], rejected: [Object.create(null) as number] }], {}, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT', /pairs\[0\]\.rejected\[0\] = an object/);
  await rejects(() => dpoStep(null as unknown as Model, [], {}, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT', /policy must be a Model .* got null/);
});

test('DPO and sequenceLogProbs refuse an array-like claiming 2^31 tokens before copying it (was a hang in Array.from)', async () => {
  const m = await sharedModel('regression');
  const huge = { length: 2 ** 31 } as unknown as number[];
  await rejects(() => dpoStep(m, [{ prompt: huge, chosen: [1], rejected: [2] }], {}, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT', /pairs\[0\]\.prompt has 2147483648 tokens, more than n_ctx = 8/);
  await rejects(() => sequenceLogProbs(m, [huge], [[0]]), 'MINIELM_INVALID_ARGUMENT', /more than n_ctx \+ 1 = 9/);
  await rejects(() => sequenceLogProbs(m, [{ length: 1.5 } as unknown as number[]], [[0]]), 'MINIELM_INVALID_ARGUMENT', /has length 1\.5/);
});

test('buildPreferenceBatch takes 150,000 pairs (was RangeError: Math.max(...lengths) overflowed the stack)', async () => {
  const m = await sharedModel('regression');
  const pairs = Array.from({ length: 150_000 }, (_, i) => ({ prompt: [1], chosen: [2, 3].slice(0, 1 + (i % 2)), rejected: [4] }));
  const batch = buildPreferenceBatch(pairs, m);
  assert.is(batch.batch, 300_000);
  assert.is(batch.seq, 2);
});

test('Tokenizer.load refuses a folder that is not a string (was TypeError ERR_INVALID_ARG_TYPE from path.join)', async () => {
  await rejects(() => Tokenizer.load(42 as unknown as string), 'MINIELM_INVALID_ARGUMENT', /Tokenizer\.load needs the path of a folder/);
  await rejects(() => Tokenizer.load(['dir'] as unknown as string), 'MINIELM_INVALID_ARGUMENT');
});

async function tokenizerFolder(name: string, edit: (json: Record<string, unknown>) => void, config?: string): Promise<string> {
  const { tokenizerJson, config: cfg } = tinyTokenizerFiles();
  const json = structuredClone(tokenizerJson) as unknown as Record<string, unknown>;
  edit(json);
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  await writeFile(join(d, 'tokenizer.json'), JSON.stringify(json));
  await writeFile(join(d, 'tokenizer_config.json'), config ?? JSON.stringify(cfg));
  return d;
}

test('Tokenizer.load refuses corrupted added_tokens, ids and configs with MINIELM_BAD_FILE (were TypeErrors or huge vocabularies)', async () => {
  await rejects(async () => Tokenizer.load(await tokenizerFolder('added-object', (j) => (j.added_tokens = { a: 1 }))), 'MINIELM_BAD_FILE', /added_tokens is an object, not an array/);
  await rejects(async () => Tokenizer.load(await tokenizerFolder('added-null', (j) => (j.added_tokens = [null]))), 'MINIELM_BAD_FILE', /added_tokens\[0\] is not an object/);
  // An id of 10^9 made vocabSize 10^9 + 1: every per-token array after it (the word constraint) was gigabytes.
  await rejects(async () => Tokenizer.load(await tokenizerFolder('id-huge', (j) => ((j.model as { vocab: Record<string, number> }).vocab.a = 1e9))), 'MINIELM_BAD_FILE', /the id 1000000000, not an integer in \[0, 4194304\)/);
  await rejects(async () => Tokenizer.load(await tokenizerFolder('id-string', (j) => ((j.model as { vocab: Record<string, unknown> }).vocab.a = 'x'))), 'MINIELM_BAD_FILE', /model\.vocab gives token "a" the id "x"/);
  await rejects(async () => Tokenizer.load(await tokenizerFolder('config-null', () => undefined, 'null')), 'MINIELM_BAD_FILE', /tokenizer_config\.json holds null, not a JSON object/);
  await rejects(async () => Tokenizer.load(await tokenizerFolder('config-array', () => undefined, '["a"]')), 'MINIELM_BAD_FILE', /not a JSON object/);
});

test('tokenizer.decode / encodeBatch refuse what is not a list (were "ids is not iterable" / "texts.map is not a function")', () => {
  const { tokenizerJson, config } = tinyTokenizerFiles();
  const t = Tokenizer.fromJson(tokenizerJson, config);
  assert.throws(() => t.decode((() => 1) as unknown as number[]), (e: unknown) => e instanceof MinielmError && e.code === 'MINIELM_INVALID_ARGUMENT' && /decode\(\) takes an array of token ids, got a function/.test(e.message));
  assert.throws(() => t.decode([Symbol('x') as unknown as number]), (e: unknown) => e instanceof MinielmError && /token id a symbol/.test(e.message));
  assert.throws(() => t.decode([1], { skipSpecialTokens: 'yes' as unknown as boolean }), (e: unknown) => e instanceof MinielmError && /skipSpecialTokens must be true or false/.test(e.message));
  assert.is(t.decode(Int32Array.of(...t.encode('red')) as unknown as number[], null as unknown as undefined), 'red');
  assert.throws(() => t.encodeBatch(true as unknown as string[]), (e: unknown) => e instanceof MinielmError && e.code === 'MINIELM_INVALID_ARGUMENT');
});

test('validateLabelMap / loadRelevanceTable refuse malformed options with MINIELM_INVALID_ARGUMENT (were TypeErrors)', async () => {
  const path = join(dir, 't.csv');
  await writeFile(path, 'query,title,label\nred drill,Red Drill,3\n');
  const columns = { query: 'query', title: 'title', label: 'label' };
  await rejects(() => loadRelevanceTable(null as never), 'MINIELM_INVALID_ARGUMENT', /options must be an object/);
  await rejects(() => loadRelevanceTable({ path, columns } as never), 'MINIELM_INVALID_ARGUMENT', /a label map must be an object/);
  await rejects(() => loadRelevanceTable({ path, columns, labels: { kind: 'graded', min: 1, max: 3 } as never }), 'MINIELM_INVALID_ARGUMENT', /needs thresholds/);
  await rejects(() => loadRelevanceTable({ path, columns, labels: { kind: 'categorical', table: null } as never }), 'MINIELM_INVALID_ARGUMENT', /needs a table/);
  await rejects(() => loadRelevanceTable({ path, columns: null as never, labels: HOMEDEPOT_LABELS }), 'MINIELM_INVALID_ARGUMENT', /columns must be a column map/);
  await rejects(() => loadRelevanceTable({ path: Symbol('p') as never, columns, labels: HOMEDEPOT_LABELS }), 'MINIELM_INVALID_ARGUMENT', /path must be the path of a CSV or JSONL file, got a symbol/);
  await rejects(() => loadRelevanceTable({ path, columns, labels: HOMEDEPOT_LABELS, encoding: 5 as never }), 'MINIELM_INVALID_ARGUMENT', /encoding must be/);
  await rejects(() => loadRelevanceTable({ path, columns, labels: HOMEDEPOT_LABELS, delimiter: '' }), 'MINIELM_INVALID_ARGUMENT', /delimiter must be/);
  // The last progress call came after the try block: a non-function onProgress threw a TypeError after the whole file was read.
  await rejects(() => loadRelevanceTable({ path, columns, labels: HOMEDEPOT_LABELS, onProgress: 5 as never }), 'MINIELM_INVALID_ARGUMENT', /onProgress must be a function/);
  assert.throws(() => validateLabelMap({ kind: 'ordinal' } as never, 'x'), /kind must be 'esci', 'graded' or 'categorical'/);
  const ok = await loadRelevanceTable({ path, columns, labels: HOMEDEPOT_LABELS });
  assert.is(ok.judgements.length, 1);
});

test('loadEsci refuses missing or malformed options with MINIELM_INVALID_ARGUMENT (were TypeErrors)', async () => {
  await rejects(() => loadEsci(undefined as never), 'MINIELM_INVALID_ARGUMENT', /options must be an object/);
  await rejects(() => loadEsci({ examplesPath: 5 } as never), 'MINIELM_INVALID_ARGUMENT', /examplesPath must be the path/);
  await rejects(() => loadEsci({ examplesPath: join(dir, 'x.parquet'), onProgress: 'log' } as never), 'MINIELM_INVALID_ARGUMENT', /onProgress must be a function/);
  await rejects(() => loadEsci({ examplesPath: join(dir, 'x.parquet'), windowRows: Symbol('w') } as never), 'MINIELM_INVALID_ARGUMENT', /windowRows must be a positive integer \(got a symbol\)/);
  await rejects(() => loadEsci({ examplesPath: join(dir, 'x.parquet'), gains: { E: 2 } }), 'MINIELM_INVALID_ARGUMENT', /gains\.E must be a gain in \[0, 1\]/);
});

test('loadEsci answers a parquet footer whose schema claims more columns than it lists with MINIELM_BAD_FILE (was a TypeError from hyparquet)', async () => {
  const column = { name: 'query', type: 'BYTE_ARRAY' as const, converted_type: 'UTF8' as const, repetition_type: 'OPTIONAL' as const };
  const bytes = new Uint8Array(parquetWriteBuffer({ schema: [{ name: 'schema', num_children: 1 }, column], columnData: [{ name: 'query', data: ['a'] }] }));
  // The root element: its name "schema", then num_children (field header 0x15, zigzag varint 2 = 1 child): make it 3.
  const at = Buffer.from(bytes).indexOf(Buffer.from([6, ...Buffer.from('schema'), 0x15, 2])) + 8;
  assert.ok(at > 8, 'the root schema element was not found in the footer');
  bytes[at] = 6;
  const path = join(dir, 'bad-schema.parquet');
  await writeFile(path, bytes);
  await rejects(() => loadEsci({ examplesPath: path }), 'MINIELM_BAD_FILE', /not a readable parquet file/);
});

test('expand and createRewriteHandler refuse a string as the retriever (String.prototype.search turned the texts into a RegExp: SyntaxError)', async () => {
  const r = await Rewriter.load(await rewriterFolder(), { maxNewTokens: 4 });
  try {
    await rejects(() => r.expand('red drill', 'cordless drill' as never, { n: 2 }), 'MINIELM_INVALID_ARGUMENT', /expand needs a retriever .* got "cordless drill"/);
    assert.throws(() => createRewriteHandler(r, { retriever: 'x' as never, registry: new Registry() }), /retriever must be an object with search/);
  } finally {
    await r.close();
  }
});

test('Rewriter.load refuses words: null (was "object null is not iterable")', async () => {
  await rejects(async () => Rewriter.load(await rewriterFolder(), { words: null as never }), 'MINIELM_INVALID_ARGUMENT', /words must be an iterable/);
});

test('startRewriteServer / createRewriteHandler refuse hostile options with MINIELM_INVALID_ARGUMENT (were TypeErrors, RangeErrors, or accepted)', async () => {
  const r = await Rewriter.load(await rewriterFolder(), { maxNewTokens: 4 });
  try {
    await rejects(() => startRewriteServer(r, null as never), 'MINIELM_INVALID_ARGUMENT', /options must be an object/);
    await rejects(() => startRewriteServer(r, { host: Symbol('h') as never, port: 0 }), 'MINIELM_INVALID_ARGUMENT', /host must be/);
    await rejects(() => startRewriteServer(r, { port: 0, graceMs: Object.create(null) as number }), 'MINIELM_INVALID_ARGUMENT', /graceMs must be .* got an object/);
    await rejects(() => startRewriteServer(r, { port: Object.create(null) as number }), 'MINIELM_INVALID_ARGUMENT', /port must be .* got an object/);
    // Past 2^31 - 1 ms, setTimeout fires at once: every request was answered 408 / 504 immediately.
    await rejects(() => startRewriteServer(r, { port: 0, timeoutMs: 2 ** 32, registry: new Registry() }), 'MINIELM_INVALID_ARGUMENT', /timeoutMs must be a positive integer \(at most 2147483647\)/);
    assert.throws(() => createRewriteHandler(r, { timeoutMs: Number.MAX_SAFE_INTEGER, registry: new Registry() }), /timeoutMs must be a positive integer/);
    assert.throws(() => createRewriteHandler(r, { maxBodyBytes: Object.create(null) as number, registry: new Registry() }), /maxBodyBytes must be a positive integer, got an object/);
    assert.throws(() => createRewriteHandler(r, { playground: [Symbol('p')] as never, registry: new Registry() }), /playground must be true or false, got an array of 1/);
  } finally {
    await r.close();
  }
});

function firstStatusLine(port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (chunk) => (got += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got.split('\r\n')[0] ?? ''));
    socket.write(request);
  });
}

test('startRewriteServer answers CONNECT with 405 (node:http dropped the connection without an answer)', async () => {
  const r = await Rewriter.load(await rewriterFolder(), { maxNewTokens: 4 });
  const s = await startRewriteServer(r, { port: 0, registry: new Registry() });
  try {
    const line = await firstStatusLine(Number(new URL(s.url).port), 'CONNECT /v1/rewrite HTTP/1.1\r\nhost: localhost\r\n\r\n');
    assert.is(line, 'HTTP/1.1 405 Method Not Allowed');
    const health = await fetch(new URL('healthz', s.url));
    assert.is(health.status, 200);
  } finally {
    await s.shutdown();
    await r.close();
  }
});

// ---- regression tests left to the checkpoint rewrite (lib/model/model.ts, lib/model/safetensors.ts) ----
// They fail until it lands; test/fuzz/harness.ts LEAD_OWNED lists their signatures (delete an entry there once
// its test passes, so the fuzzing counts that bug as new again if it comes back).

test('lead: Model batches and options holding BigInt, Symbol, null or prototype-less values', async () => {
  const m = await sharedModel('regression');
  const s = await sharedModel('regression-score', { ...TINY, score_head: true });
  await rejects(() => m.forward({ batch: 1, seq: 2, tokens: [1, 2n as unknown as number] }), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => m.forward({ batch: 1, seq: 1, tokens: [Symbol('t') as unknown as number] }), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => m.forward({ batch: 1, seq: 1, tokens: null as unknown as number[] }), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => m.forward({ batch: 1, seq: 1, tokens: [1], targets: [Object.create(null) as number] }), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => m.forward({ batch: Object.create(null) as number, seq: 1, tokens: [1] }), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => m.forward({ batch: 1, seq: [Symbol('s')] as unknown as number, tokens: [1] }), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => m.trainStep({ batch: 1, seq: 1, tokens: [1], targets: [2] }, { lr: Object.create(null) as number }), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => s.trainScoreStep({ batch: 1, seq: 1, tokens: [1] }, null as unknown as number[], { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => Model.create({ ...TINY, n_ctx: Object.create(null) as number }), 'MINIELM_INVALID_ARGUMENT');
  assert.throws(() => parseSafetensors('not bytes' as unknown as Uint8Array, 'x.safetensors'), (e: unknown) => e instanceof MinielmError);
});

test('lead: Model.create with a BigInt in the config', async () => {
  await rejects(() => Model.create({ ...TINY, n_ctx: { a: 1n } as unknown as number }), 'MINIELM_INVALID_ARGUMENT');
});

test('lead: Model.load with a folder that is not a string', async () => {
  await rejects(() => Model.load(42 as unknown as string), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => Model.load(['dir'] as unknown as string), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => Model.load({ constructor: 1 } as unknown as string), 'MINIELM_INVALID_ARGUMENT');
});

test('lead: Model methods with null options or a config.json of null', async () => {
  const m = await sharedModel('regression');
  await rejects(() => Model.create(TINY, null as never), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => m.forward({ batch: 1, seq: 1, tokens: [1] }, null as never), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => m.train(undefined as never, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT');
  await rejects(() => m.train([{ batch: 1, seq: 1, tokens: [1], targets: [2] }], { lr: 1e-3 }, { onStep: 5 as never }), 'MINIELM_INVALID_ARGUMENT');
  const d = join(dir, 'null-config');
  await mkdir(d, { recursive: true });
  await writeFile(join(d, 'config.json'), 'null');
  await rejects(() => Model.load(d), 'MINIELM_CHECKPOINT');
});

test('lead: model.save with a BigInt in the metadata', async () => {
  const m = await sharedModel('regression');
  await rejects(() => m.save(join(dir, 'bigint-metadata'), { metadata: { step: 1n as unknown as string } }), 'MINIELM_INVALID_ARGUMENT');
});

function leadChild(which: string): { out: string; status: number | null; signal: NodeJS.Signals | null } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--max-old-space-size=256', join('test', 'fuzz', 'lead-child.ts'), which], { encoding: 'utf8', timeout: 20_000 });
  return { out: `${run.stdout}${run.stderr.split('\n').slice(-3).join(' ')}`, status: run.status, signal: run.signal };
}

test('lead: Model.load of a 200-byte config.json with n_layer 3e6 exhausts the heap (expectedTensors runs before any limit)', () => {
  const r = leadChild('huge-n-layer');
  assert.match(r.out, /CODE MINIELM_CHECKPOINT/, `child ${r.signal ?? `exit ${r.status}`}: ${r.out.slice(-300)}`);
});

test('lead: Model batches whose tokens claim 2^31 entries are copied before their length is checked (minutes, gigabytes)', () => {
  const r = leadChild('huge-array-like');
  assert.match(r.out, /CODE MINIELM_INVALID_ARGUMENT/, `child ${r.signal ?? `exit ${r.status}`}: ${r.out.slice(-300)}`);
});

test.run();
