// Rule-aware dense rewards: each named check in [0, 1], the product term found through a misspelling, the
// weighted mean, the hard-rule count guided replay reads, and refused configurations.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RuleRewards, editDistance, DEFAULT_RULE_WEIGHTS, RULE_NAMES } from '../lib/rewards/rules.ts';
import { catalogWords } from '../lib/rewrite/hygiene.ts';
import { MinielmError } from '../lib/errors.ts';

const vocabulary = catalogWords(['gas lawn mower', 'cordless drill 18v', 'ceiling fan with light', 'garden hose nozzle', 'outdoor solar lights', 'mowers']);
const zero = { relevance: 0, diversity: 0, click: 0, addToCart: 0, purchase: 0 };
const rules = new RuleRewards({ vocabulary });

test('edit distance', () => {
  assert.is(editDistance('mowe', 'mower'), 1);
  assert.is(editDistance('lites', 'lights'), 3);
  assert.is(editDistance('kitten', 'sitting'), 3);
  assert.is(editDistance('abc', 'abcdefgh', 2), 3, 'stops past the limit');
});

test('the product term survives, also through a misspelled query word and a plural', () => {
  assert.equal([...rules.productTerms('cordless drill')], ['drill']);
  assert.ok(rules.productTerms('gas mowe').has('mower'), 'the catalog spelling of an unknown last word counts');
  assert.is(rules.score('gas mowe', 'gas lawn mower', zero).scores.productTerm, 1);
  assert.is(rules.score('gas mowe', 'gas lawn mowers', zero).scores.productTerm, 1, 'plurals fold');
  assert.is(rules.score('cordless drill', 'ceiling fan light', zero).scores.productTerm, 0);
  assert.is(rules.score('outdoor solar ligts', 'outdoor solar lights', zero).scores.productTerm, 1);
  assert.is(rules.score('outdoor solar lites', 'outdoor solar lights', zero).scores.productTerm, 0, 'beyond edit distance 2 it is another word');
});

test('repeats, length and unknown words each lower their own check', () => {
  const ok = rules.score('cordless drill', 'cordless drill 18v', zero);
  assert.equal([ok.scores.noRepeat, ok.scores.length, ok.scores.knownWords], [1, 1, 1]);
  assert.is(ok.rulesPassed, 4);
  const rep = rules.score('ceiling fan', 'fan fan fan light', zero);
  assert.is(rep.scores.noRepeat, 0.5);
  assert.is(rep.rulesPassed, 3);
  assert.is(rules.score('fan', 'fan', zero).scores.length, 0.5, 'one word of at least two');
  assert.is(rules.score('fan', '', zero).scores.length, 0);
  assert.is(rules.score('drill', 'drill zzyzx', zero).scores.knownWords, 0.5);
  const long = rules.score('drill', Array.from({ length: 12 }, (_, i) => `drill${i}`).join(' '), zero);
  assert.is(long.scores.length, 0.5, '12 words with a bound of 8: 1 - 4/8');
});

test('the reward is the weighted mean of the checks; the environment components pass through', () => {
  const env = { relevance: 0.8, diversity: 0.4, click: 0.5, addToCart: 0.2, purchase: 0.1 };
  const r = rules.score('cordless drill', 'cordless drill 18v', env);
  assert.is(r.scores.relevance, 0.8);
  assert.is(r.scores.diversity, 0.4);
  const engagement = (0.25 * 0.5 + 0.25 * 0.2 + 0.5 * 0.1) / 1;
  assert.ok(Math.abs(r.scores.engagement - engagement) < 1e-12);
  const w = DEFAULT_RULE_WEIGHTS;
  const want = RULE_NAMES.reduce((a, k) => a + w[k] * r.scores[k], 0) / RULE_NAMES.reduce((a, k) => a + w[k], 0);
  assert.ok(Math.abs(r.reward - want) < 1e-12);
  const onlyTerm = new RuleRewards({ vocabulary, weights: { productTerm: 1, noRepeat: 0, length: 0, knownWords: 0, relevance: 0, diversity: 0, engagement: 0 } });
  assert.is(onlyTerm.score('cordless drill', 'drill bits', env).reward, 1);
  assert.is(onlyTerm.score('cordless drill', 'saw', env).reward, 0);
});

test('bad configurations are refused', () => {
  for (const [name, make] of [
    ['empty vocabulary', () => new RuleRewards({ vocabulary: new Set() })],
    ['unknown rule', () => new RuleRewards({ vocabulary, weights: { spelling: 1 } as never })],
    ['negative weight', () => new RuleRewards({ vocabulary, weights: { length: -1 } })],
    ['all zero', () => new RuleRewards({ vocabulary, weights: Object.fromEntries(RULE_NAMES.map((k) => [k, 0])) })],
    ['bounds', () => new RuleRewards({ vocabulary, minWords: 5, maxWords: 3 })],
  ] as const) {
    try {
      make();
      assert.unreachable(name);
    } catch (err) {
      assert.instance(err, MinielmError, name);
    }
  }
});

test.run();
