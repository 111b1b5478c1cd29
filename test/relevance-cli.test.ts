// `minielm relevance held-out` and `relevance train --init`: the held-out queries are exactly the split's dev
// and test queries; a scorer trained on a pretrained trunk records it (and --keep-case) and evaluates; bad --init use
// is refused.
import { test } from 'uvu';
import { existsSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { generateSyntheticCatalog } from '../lib/data/synthetic.ts';
import { Model } from '../lib/model/model.ts';
import { normalizeRelevanceText, splitByQuery } from '../lib/rewards/learned.ts';
import { trainTokenizer } from '../lib/tokenizer/index.ts';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
function cli(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'minielm.js'), ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const dir = await mkdtemp(join(tmpdir(), 'minielm-relevance-cli-'));
// A Home Depot-shaped table (1..3 ratings) from the synthetic catalog.
const catalog = generateSyntheticCatalog({ seed: 8, products: 120, queries: 160 });
const rating = { E: 3, S: 2.33, C: 1.67, I: 1 } as const;
const rows = catalog.judgements.map((j, i) => `${i + 1},${j.productId},"${catalog.products.get(j.productId)?.title}","${j.query}",${rating[j.label]}`);
const table = join(dir, 'hd.csv');
await writeFile(table, ['id,product_uid,product_title,search_term,relevance', ...rows].join('\n'));

test('held-out writes exactly the dev and test queries of the split, as identity pairs, and an empty train.jsonl', async () => {
  const out = join(dir, 'held');
  const r = cli('relevance', 'held-out', '--data', table, '--out', out, '--split-seed', '3');
  assert.is(r.status, 0, r.out);
  const written = (await readFile(join(out, 'test.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { query: string; rewrite: string });
  const sides = splitByQuery(catalog.judgements.map((j) => ({ query: j.query })), { seed: 3 });
  const expected = new Set([...sides.dev, ...sides.test].map((p) => p.query));
  assert.ok(expected.size > 0);
  assert.equal(new Set(written.map((p) => p.query)), expected);
  assert.is(written.length, expected.size, 'each query once');
  assert.ok(written.every((p) => p.rewrite === p.query));
  assert.is(await readFile(join(out, 'train.jsonl'), 'utf8'), '');
});

test('train --init starts from the trunk folder, records it, and the scorer evaluates', async () => {
  const trunkDir = join(dir, 'trunk');
  const texts = [...catalog.products.values()].map((p) => normalizeRelevanceText(p.title)).concat(catalog.queries.map((q) => normalizeRelevanceText(q.text)));
  const tokenizer = await trainTokenizer(texts, { vocabSize: 400 });
  const trunk = await Model.create({ vocab_size: tokenizer.vocabSize, n_ctx: 32, n_layer: 1, n_head: 2, n_embd: 32 }, { seed: 2 });
  await trunk.save(trunkDir);
  await tokenizer.save(trunkDir);
  await trunk.dispose();
  const out = join(dir, 'scorer');
  const r = cli('relevance', 'train', '--data', table, '--init', trunkDir, '--out', out, '--pretrain-epochs', '0', '--epochs', '1', '--batch', '32', '--max-query-tokens', '10', '--threads', '1', '--keep-case');
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /learned\s+Spearman/);
  assert.match(r.out, /lexical stage: \d+ trees/);
  assert.ok(existsSync(join(out, 'lexical.json')), 'the boosted-tree stage is saved with the network');
  const meta = JSON.parse(await readFile(join(out, 'relevance.json'), 'utf8')) as { input: { nCtx: number; lowercase: boolean }; training: { config: Record<string, unknown>; options: { init: string } } };
  assert.is(meta.training.options.init, trunkDir);
  assert.equal(meta.training.config, { vocab_size: tokenizer.vocabSize, n_ctx: 32, n_layer: 1, n_head: 2, n_embd: 32, score_head: true });
  assert.is(meta.input.nCtx, 32, 'the input length follows the trunk n_ctx (below the default 48)');
  assert.is(meta.input.lowercase, false, '--keep-case is stored with the input format, so scoring reads text as training did');
  const e = cli('relevance', 'eval', '--model', out, '--data', table, '--pairs', 'all');
  assert.is(e.status, 0, e.out);
  assert.match(e.out, /all pairs/);
  assert.match(e.out, /network alone\s+Spearman/);
  assert.match(e.out, /trees alone\s+Spearman/);
  // --no-lexical, and --exclude: two queries (one given as JSONL, one as a plain line, in other spellings) leave.
  const [q1, q2] = [...new Set(catalog.judgements.map((j) => j.query))];
  const pairsOf = (q: string): number => catalog.judgements.filter((j) => j.query === q).length;
  const excludeFile = join(dir, 'exclude.jsonl');
  await writeFile(excludeFile, `${JSON.stringify({ query: q1.toUpperCase() })}\n  ${q2}  \n\n`);
  const plainOut = join(dir, 'scorer-plain');
  const plain = cli('relevance', 'train', '--data', table, '--init', trunkDir, '--out', plainOut, '--pretrain-epochs', '0', '--epochs', '1', '--batch', '32', '--max-query-tokens', '10', '--threads', '1', '--no-lexical', '--exclude', excludeFile);
  assert.is(plain.status, 0, plain.out);
  assert.not.ok(existsSync(join(plainOut, 'lexical.json')));
  assert.not.match(plain.out, /network alone/);
  assert.match(plain.out, new RegExp(`2 queries, ${pairsOf(q1) + pairsOf(q2)} of ${catalog.judgements.length} pairs left out`));
  const plainMeta = JSON.parse(await readFile(join(plainOut, 'relevance.json'), 'utf8')) as { excludedQueries: string[] };
  assert.equal(plainMeta.excludedQueries.sort(), [q1, q2].map((q) => q.trim().toLowerCase().replace(/\s+/g, ' ')).sort());
  await writeFile(excludeFile, '{"query": 3}\n');
  const bad = cli('relevance', 'train', '--data', table, '--out', join(dir, 'x'), '--exclude', excludeFile);
  assert.is.not(bad.status, 0);
  assert.match(bad.out, /line 1 has no string "query"/);
});

test('bad --init use is refused before any data is read', () => {
  const missing = cli('relevance', 'train', '--data', table, '--out', join(dir, 'x'), '--init', join(dir, 'no-such-trunk'));
  assert.is(missing.status, 1);
  assert.match(missing.out, /MINIELM_NOT_FOUND.*--init .*no-such-trunk.*config\.json/);
  const sized = cli('relevance', 'train', '--data', table, '--out', join(dir, 'x'), '--init', join(dir, 'trunk'), '--layers', '3', '--width', '64');
  assert.is(sized.status, 1);
  assert.match(sized.out, /MINIELM_INVALID_ARGUMENT.*drop --layers, --width/);
  const noOut = cli('relevance', 'held-out', '--data', table);
  assert.is(noOut.status, 1);
  assert.match(noOut.out, /--out DIR is required/);
});

test.after(() => rm(dir, { recursive: true, force: true }));
test.run();
