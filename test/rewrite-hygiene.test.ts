// The rewrite hygiene's tokenizer side: token byte strings round-trip what the tokenizer encodes, and the
// catalog constraint built from a trained BPE keeps a model's rewrites inside the catalog's words.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { trainTokenizer } from '../lib/tokenizer/index.ts';
import { Model } from '../lib/model/model.ts';
import { generate } from '../lib/model/generate.ts';
import { catalogWordConstraint, catalogWords, tokenByteStrings, hygieneOptions } from '../lib/rewrite/hygiene.ts';
import { promptIds, rewriteText } from '../lib/rewrite/format.ts';

const TEXTS = ['Gas Lawn Mower 21 in.', 'cordless drill 20V', 'solar outdoor lights', 'ceiling fan with light', 'gas mower', 'lawn mower blade', 'garden hose 50 ft.'];

test('token byte strings concatenate to the UTF-8 of the encoded text', async () => {
  const tok = await trainTokenizer(TEXTS, { vocabSize: 300 });
  const { bytes, special } = tokenByteStrings(tok);
  assert.ok(special.includes(tok.eosId) && special.includes(tok.sepId));
  for (const text of [...TEXTS, 'ümlaut café 3/4 in.']) {
    const ids = tok.encode(text);
    const joined = Buffer.concat(ids.map((i) => Buffer.from(bytes[i])));
    assert.is(joined.toString('utf8'), text);
  }
});

test('catalogWords keeps words as typed and lower-cased', () => {
  const w = catalogWords(['Gas Lawn', 'mower']);
  assert.equal([...w].sort(), ['Gas', 'Lawn', 'gas', 'lawn', 'mower']);
});

test('a random model rewrites only with catalog words under the constraint', async () => {
  const tok = await trainTokenizer(TEXTS, { vocabSize: 300 });
  const words = catalogWords(TEXTS);
  const constraint = await catalogWordConstraint(tok, TEXTS);
  const m = await Model.create({ vocab_size: tok.vocabSize, n_ctx: 32, n_layer: 1, n_head: 2, n_embd: 32 }, { seed: 3 });
  const prompts = ['gas mowe', 'drill', 'solar lites'].map((q) => promptIds(tok, q, 16));
  const out = await generate(m, prompts, { strategy: 'sample', numReturnSequences: 50, maxNewTokens: 8, eosTokenId: tok.eosId, seed: 1, ...hygieneOptions(undefined, constraint) });
  let ended = 0;
  for (const g of out.flat()) {
    const text = rewriteText(tok, g.tokens);
    const parts = text.split(/\s+/).filter(Boolean);
    // A rewrite cut by the length limit may end inside a word; every other word is a catalog word.
    const whole = g.finishReason === 'eos' ? parts : parts.slice(0, -1);
    for (const w of whole) assert.ok(words.has(w), `"${w}" in "${text}" is not a catalog word`);
    if (g.finishReason === 'eos') ended++;
  }
  assert.ok(ended > 0, 'some rewrites ended with EOS');
});

test.run();
