// ROUGE-L and ExactMatch against values computed by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exactMatch, rougeL, lcsLength, bestOver, normaliseTokens } from '../lib/eval/text-metrics.ts';

const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-12;

test('normalisation: case, punctuation and spacing do not matter', () => {
  assert.equal(normaliseTokens('  Gas-Lawn  MOWER!'), ['gas', 'lawn', 'mower']);
  assert.is(exactMatch('Gas lawn mower', 'gas  lawn-mower'), 1);
  assert.is(exactMatch('gas mower', 'gas lawn mower'), 0);
  assert.is(exactMatch('mower gas', 'gas mower'), 0);
});

test('LCS by hand', () => {
  assert.is(lcsLength(['a', 'b', 'c', 'd'], ['a', 'c', 'd']), 3);
  assert.is(lcsLength(['x'], ['y']), 0);
  assert.is(lcsLength([], ['y']), 0);
  assert.is(lcsLength(['a', 'b', 'a', 'b'], ['b', 'a', 'b', 'a']), 3);
});

test('ROUGE-L F1 by hand', () => {
  // pred "gas lawn mower" (3), ref "gas mower" (2): LCS 2, P = 2/3, R = 1, F = 0.8
  assert.ok(close(rougeL('gas lawn mower', 'gas mower'), 0.8));
  // pred "maternity shorts for pregnant women" (5), ref "maternity shorts" (2): LCS 2, P = 0.4, R = 1, F = 0.8/1.4
  assert.ok(close(rougeL('maternity shorts for pregnant women', 'maternity shorts'), 0.8 / 1.4));
  // order matters: "b a" vs "a b": LCS 1, P = R = 0.5
  assert.ok(close(rougeL('b a', 'a b'), 0.5));
  assert.is(rougeL('', 'x'), 0);
  assert.is(rougeL('', ''), 1);
  assert.is(rougeL('totally different', 'gas mower'), 0);
});

test('best over several references', () => {
  assert.ok(close(bestOver(rougeL, 'gas mower', ['electric mower', 'gas mower']), 1));
  assert.is(bestOver(exactMatch, 'x', []), 0);
});

test.run();
