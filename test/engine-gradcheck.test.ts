// Backward passes against central finite differences, in double precision through the same templated
// code the float engine runs. A wrong factor, index or missing term gives errors of order 1e-1..1;
// correct code stays below 1e-5, so the bound 1e-4 separates the two with margin.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native } from '../lib/native.ts';

const TOL = 1e-4;

test('every op backward matches finite differences', () => {
  const errs = native.gradcheckOps(7);
  for (const op of ['layernorm', 'linear', 'gelu', 'attention', 'cross_entropy', 'embedding']) {
    assert.ok(op in errs, `op ${op} was checked`);
    assert.ok(errs[op] < TOL, `${op}: relative error ${errs[op]} >= ${TOL}`);
  }
});

test('whole tiny model gradients (padding mask + loss mask) match finite differences', () => {
  const errs = native.gradcheckModel({ vocab_size: 13, n_ctx: 8, n_layer: 2, n_head: 2, n_embd: 8 }, 3, 6);
  const names = Object.keys(errs);
  assert.is(names.length, 2 + 2 * 12 + 2, 'every tensor was checked');
  for (const [name, e] of Object.entries(errs)) assert.ok(e < TOL, `${name}: relative error ${e} >= ${TOL}`);
});

test('score head (relevance scorer) gradients with right padding match finite differences', () => {
  const errs = native.gradcheckScore({ vocab_size: 13, n_ctx: 8, n_layer: 2, n_head: 2, n_embd: 8 }, 5, 6);
  assert.ok('score.weight' in errs);
  for (const [name, e] of Object.entries(errs)) assert.ok(e < TOL, `${name}: relative error ${e} >= ${TOL}`);
});

test.run();
