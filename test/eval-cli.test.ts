// `minielm eval judged|probes` end to end on a small Home Depot-format table written to a temp folder.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, help } from '../lib/cli/eval.ts';
import { loadEvaluationTable } from '../lib/eval/splits.ts';
import { tableWorld } from '../lib/pipeline.ts';
import { MinielmError } from '../lib/errors.ts';
import { writeHomeDepotFixture } from './helpers/eval-fixture.ts';
import { Model } from '../lib/model/model.ts';
import { trainTokenizer } from '../lib/tokenizer/index.ts';
import { LearnedRelevanceScorer } from '../lib/rewards/learned.ts';
import { normalizeQuery } from '../lib/rewards/relevance.ts';

const dir = mkdtempSync(join(tmpdir(), 'minielm-eval-cli-'));
const csv = writeHomeDepotFixture(dir);
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function capture(argv: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => void lines.push(args.join(' '));
  try {
    return { code: await run(argv), lines };
  } finally {
    console.log = original;
  }
}

async function invalid(argv: string[], pattern: RegExp): Promise<void> {
  try {
    await capture(argv);
  } catch (e) {
    assert.ok(e instanceof MinielmError && e.code === 'MINIELM_INVALID_ARGUMENT', String(e));
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`${argv.join(' ')} should fail`);
}

test('help names the new modes and flags', () => {
  for (const word of ['judged', 'probes', '--split', '--threshold', '--pool', '--k', '--model DIR[,DIR]', 'copy']) assert.ok(help.includes(word), word);
});

test('the evaluation table has the pipeline\'s Q2Q split', async () => {
  const table = await loadEvaluationTable({ path: csv, seed: 1 });
  const world = await tableWorld({ path: csv, seed: 1 });
  assert.equal(table.test, world.test.map((p) => ({ ...p })));
  assert.ok(table.split.devQueries.length > 0 && table.split.testQueries.length > 0, 'both halves hold queries');
  assert.is(table.products.length, 120);
});

test('eval judged --model copy prints recall equal to the query alone and exits 0', async () => {
  const out = join(dir, 'judged.json');
  for (const split of ['dev', 'test']) {
    const { code, lines } = await capture(['judged', '--model', 'copy', '--data', csv, '--split', split, '--out', out]);
    assert.is(code, 0);
    const row = JSON.parse(lines[0]);
    assert.is(row.model, 'copy');
    assert.is(row.split, split);
    assert.ok(row.queries > 0, `${split}: ${row.queries} queries`);
    assert.type(row.recall, 'number');
    assert.is(row.recall, row.queryAlone);
    assert.is(row.ratio, 1);
    // Each fixture query's two relevant products carry its words: BM25 finds both in its top 10.
    assert.is(row.recall, 1);
    const saved = JSON.parse(readFileSync(out, 'utf8'));
    assert.is(saved.results[0].queries, row.queries);
  }
});

test('eval judged --model drop-word adds rewrites; eval probes --model copy passes nothing', async () => {
  const judged = JSON.parse((await capture(['judged', '--model', 'drop-word', '--data', csv, '--k', '1'])).lines[0]);
  assert.ok(judged.distinctRewrites > 0);
  assert.ok(judged.recall >= judged.queryAlone);
  // --select fresh over the same candidates, one sent: never below the top-ranked one's union (it is among the
  // candidates the selection weighs), and the row says how it chose.
  const one = JSON.parse((await capture(['judged', '--model', 'drop-word', '--data', csv, '--k', '1', '--n', '1'])).lines[0]);
  const fresh = JSON.parse((await capture(['judged', '--model', 'drop-word', '--data', csv, '--k', '1', '--n', '1', '--select', 'fresh', '--fresh-weight', '100'])).lines[0]);
  assert.is(fresh.select, 'fresh');
  assert.is(fresh.candidates, 30);
  assert.ok(fresh.meanRetrieved >= one.meanRetrieved, `fresh selection shows ${fresh.meanRetrieved} products, top-1 ${one.meanRetrieved}`);
  const { code, lines } = await capture(['probes', '--model', 'copy']);
  assert.is(code, 0);
  const probes = JSON.parse(lines[0]);
  assert.ok(probes.probes >= 40);
  assert.is(probes.passAt1, 0);
  assert.is(probes.passAtN, 0);
});

test('eval held-out lists the Q2Q test side; --select relevance takes only a scorer that excluded it', async () => {
  const listFile = join(dir, 'held-out.jsonl');
  assert.is((await capture(['held-out', '--data', csv, '--out', listFile])).code, 0);
  const listed = readFileSync(listFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { query: string }).query);
  const table = await loadEvaluationTable({ path: csv, seed: 1 });
  const expected = new Set(table.test.flatMap((p) => [p.query, p.rewrite]).map(normalizeQuery));
  assert.equal(new Set(listed.map(normalizeQuery)), expected, 'every query and reference of the test side, once');
  // A tiny untrained scorer: the mechanics, not the quality.
  const tokenizer = await trainTokenizer(table.products.map((p) => ` ${p.title.toLowerCase()}`), { vocabSize: 300 });
  const model = await Model.create({ vocab_size: tokenizer.vocabSize, n_ctx: 32, n_layer: 1, n_head: 2, n_embd: 16, score_head: true }, { seed: 1 });
  const scorer = new LearnedRelevanceScorer(model, tokenizer, { nCtx: 32, maxQueryTokens: 12 });
  const scorerDir = join(dir, 'scorer');
  await scorer.save(scorerDir);
  const args = ['judged', '--model', 'drop-word', '--data', csv, '--k', '1', '--n', '1', '--select', 'relevance', '--relevance-model', scorerDir];
  await invalid(args, /trained on the labels of \d+ of the \d+ dev queries.*--exclude FILE.*eval held-out/);
  await invalid(['judged', '--model', 'drop-word', '--data', csv, '--select', 'relevance'], /needs --relevance-model/);
  await invalid([...args, '--pool', 'unseen'], /--pool q2q only/);
  scorer.excludedQueries = new Set(listed.map(normalizeQuery));
  await scorer.save(scorerDir);
  const loaded = await LearnedRelevanceScorer.load(scorerDir);
  assert.equal(loaded.unexcluded(listed), [], 'the exclusion list survives save / load');
  await loaded.dispose();
  const { code, lines } = await capture(args);
  assert.is(code, 0);
  const row = JSON.parse(lines[0]);
  assert.is(row.select, 'relevance');
  assert.is(row.candidates, 60);
  assert.ok(row.recall >= row.queryAlone);
  await scorer.dispose();
});

test('bad flags are named', async () => {
  await invalid(['judged', '--model', 'copy', '--data', csv, '--threshold', 'abc'], /--threshold/);
  await invalid(['judged', '--model', 'copy', '--data', csv, '--threshold', '3.5'], /--threshold.*\[1, 3\]/);
  await invalid(['judged', '--model', 'copy', '--data', csv, '--split', 'train'], /--split/);
  await invalid(['judged', '--model', 'copy', '--data', csv, '--k', '0'], /--k/);
  await invalid(['judged', '--model', 'copy', '--data', csv, '--select', 'best'], /--select/);
  await invalid(['judged', '--model', 'copy', '--data', csv, '--select', 'fresh', '--fresh-weight=-1'], /--fresh-weight/);
  await invalid(['judged', '--model', 'copy', '--data', csv, '--weights', 'fp16'], /--weights must be fp32 or bf16/);
  await invalid(['judged', '--data', csv], /--model/);
  await invalid(['coverage', '--model', 'copy'], /--model copy/);
  const missing = join(dir, 'nope.csv');
  try {
    await capture(['judged', '--model', 'copy', '--data', missing]);
    assert.unreachable('a missing file should fail');
  } catch (e) {
    assert.ok(e instanceof MinielmError && e.code === 'MINIELM_NOT_FOUND', String(e));
  }
});

test.run();
