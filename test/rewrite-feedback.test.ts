// Pseudo-relevance feedback rewrites (lib/rewrite/feedback.ts): the expansion word is the one the query's
// own top results share and the catalog rarely has, weighted by rank; query words, numbers, short words and
// fillers never are one; unknown ids are skipped; the order is deterministic; bad arguments are named.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FeedbackExpander, feedbackWords } from '../lib/rewrite/feedback.ts';
import { feedbackRewriter } from '../lib/eval/rewriters.ts';
import { Bm25Retriever } from '../lib/retrieval/index.ts';
import { MinielmError } from '../lib/errors.ts';

const PRODUCTS = [
  { id: 'p1', title: 'Cordless Drill Lithium Kit 20' },
  { id: 'p2', title: 'Cordless Drill Lithium Battery and Charger' },
  { id: 'p3', title: 'Corded Drill 1/2 in. Hammer' },
  { id: 'p4', title: 'Garden Hose 50 ft. Kink Free' },
  { id: 'p5', title: 'Garden Hose Nozzle Brass' },
  { id: 'p6', title: 'Brass Door Knob Satin' },
  { id: 'p7', title: 'Door Hinge Satin Nickel' },
  { id: 'p8', title: 'Nickel Cabinet Pull' },
  { id: 'p9', title: 'Ceiling Fan White' },
  { id: 'p10', title: 'Ceiling Light Fixture' },
];

test('words: lower-cased, inner punctuation kept', () => {
  assert.equal(feedbackWords('Corded Drill 1/2 in. O-Ring'), ['corded', 'drill', '1/2', 'in', 'o-ring']);
  assert.equal(feedbackWords('  '), []);
});

test('the word the top results share and the catalog rarely has comes first; ranks weigh the votes', () => {
  const fx = new FeedbackExpander(PRODUCTS);
  // p1 and p2 both hold "lithium" (df 2 of 10: 1.5 log 5 = 2.41); "kit" is in p1 alone (log 10 = 2.30).
  const words = fx.words('cordless drill', ['p1', 'p2', 'p3'], 10);
  assert.is(words[0], 'lithium');
  for (const w of ['cordless', 'drill', '20', '1/2', 'and', 'in']) assert.not.ok(words.includes(w), `${w} is not an expansion word`);
  assert.ok(words.indexOf('kit') < words.indexOf('battery'), 'rank 1 votes more than rank 2');
  assert.ok(words.includes('hammer'), 'lower-ranked results still vote');
  assert.equal(fx.words('cordless drill', ['p1', 'p2', 'p3'], 2), words.slice(0, 2));
  assert.equal(fx.words('cordless drill', ['nope', 'p1', 'p2', 'p3'], 10).length, words.length, 'unknown ids are skipped');
  assert.equal(fx.words('x', [], 5), []);
  // Equal scores break by the word, so the order never depends on the title order.
  const tie = new FeedbackExpander([{ id: 'a', title: 'zeta alpha' }, { id: 'b', title: 'other' }]);
  assert.equal(tie.words('q', ['a'], 2), ['alpha', 'zeta']);
});

test('rewrites: the query plus one word each, from the retriever\'s results', async () => {
  const bm25 = new Bm25Retriever();
  await bm25.index(PRODUCTS);
  const fx = new FeedbackExpander(PRODUCTS);
  const [drill, hose] = await fx.rewrites(['cordless drill', 'garden hose'], bm25, 3);
  assert.is(drill[0], 'cordless drill lithium');
  assert.ok(drill.every((r) => r.startsWith('cordless drill ')) && drill.length === 3);
  assert.ok(hose.every((r) => r.startsWith('garden hose ')) && hose.length > 0);
  assert.equal(await feedbackRewriter(fx, bm25, 3)(['cordless drill']), [drill]);
  assert.equal(await fx.rewrites([], bm25, 3), []);
});

test('bad arguments are named', async () => {
  const bm25 = new Bm25Retriever();
  await bm25.index(PRODUCTS);
  const fx = new FeedbackExpander(PRODUCTS);
  for (const [call, pattern] of [
    [() => fx.rewrites(['a'], bm25, 3, { depth: 0 }), /depth/],
    [() => fx.rewrites(['a'], bm25, -1), /count/],
    [async () => new FeedbackExpander([{ id: 1, title: 'x' } as never]), /string id and title/],
    [async () => feedbackRewriter(fx, bm25, 0), /n must be/],
  ] as [() => Promise<unknown>, RegExp][]) {
    try {
      await call();
      assert.unreachable('expected an error');
    } catch (err) {
      assert.instance(err, MinielmError);
      assert.match((err as Error).message, pattern);
    }
  }
});

test.run();
