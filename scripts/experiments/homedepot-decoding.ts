// Dev-split experiment: decoding variants (raw, hygiene, catalog words) of one trained rewriter. Usage:
// node --import tsx scripts/experiments/homedepot-decoding.ts runs/homedepot/online/best
import { join } from 'node:path';
import { Model } from '../../lib/model/model.ts';
import { Tokenizer } from '../../lib/tokenizer/index.ts';
import { evaluateOffline, evaluateCopyQuery } from '../../lib/eval/offline.ts';
import { loadEvaluationTable } from '../../lib/eval/splits.ts';
import { catalogWordConstraint, hygieneOptions, DEFAULT_HYGIENE, NO_HYGIENE } from '../../lib/rewrite/hygiene.ts';
const dir = process.argv[2];
const table = await loadEvaluationTable({ path: join('..', 'shared', 'data', 'homedepot', 'train.csv'), seed: 1, k: 2 });
const dev = table.split.dev;
const model = await Model.load(dir);
const tok = await Tokenizer.load(dir);
const c = await catalogWordConstraint(tok, [...table.products.map((p) => p.title), ...table.train.map((p) => p.query)]);
const copy = evaluateCopyQuery(dev as never, { maxQueries: 300 });
console.log('copy', copy.rougeL.toFixed(2), copy.meanLength.toFixed(2));
const variants: [string, object][] = [
  ['raw', hygieneOptions(NO_HYGIENE)],
  ['hygiene', hygieneOptions(DEFAULT_HYGIENE)],
  ['catalog', hygieneOptions(DEFAULT_HYGIENE, c)],
  ['catalog min3', { ...hygieneOptions(DEFAULT_HYGIENE, c), minNewTokens: 3 }],
  ['catalog norep', { ...hygieneOptions(NO_HYGIENE, c) }],
];
for (const [name, decoding] of variants) {
  const m = await evaluateOffline(model, tok, dev as never, { maxQueries: 300, decoding });
  console.log(name, 'rougeL', m.rougeL.toFixed(2), 'em', m.exactMatch.toFixed(2), 'len', m.meanLength.toFixed(2));
}
