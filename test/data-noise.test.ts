// Query noise and denoising pairs: each operator does what its name says on fixed inputs, numbers never
// change, a noisy text always differs from its clean text, the pairs are seeded and deduplicated, and the
// SFT mix holds the documented ratio.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  NOISE_KINDS, QWERTY_NEIGHBOURS, addQueryNoise, applyNoise, denoisingCount, denoisingPairs, mixPairs, titlePhrase, titleWords, togglePlural,
  DEFAULT_DENOISE_RATIO, type NoiseKind,
} from '../lib/data/noise.ts';
import { createRng } from '../lib/data/random.ts';

const digits = (s: string): string[] => s.match(/\d+/g) ?? [];

/** Every distinct result of one operator on `text` over `runs` seeds. */
function outcomes(kind: NoiseKind, text: string, runs = 200): Set<string | null> {
  const out = new Set<string | null>();
  for (let seed = 1; seed <= runs; seed++) out.add(applyNoise(kind, text, createRng(seed)));
  return out;
}

test('keyboard: one letter becomes one of its QWERTY neighbours', () => {
  const input = 'cordless drill';
  for (const out of outcomes('keyboard', input)) {
    assert.ok(out !== null);
    assert.is(out.length, input.length);
    const diff = [...input].map((c, i) => (c !== out[i] ? i : -1)).filter((i) => i >= 0);
    assert.is(diff.length, 1, `${out}: exactly one position changed`);
    assert.ok(QWERTY_NEIGHBOURS[input[diff[0]]].includes(out[diff[0]]), `${input[diff[0]]} -> ${out[diff[0]]} is a neighbour key`);
  }
  assert.is(applyNoise('keyboard', 'MDF', createRng(1))?.toUpperCase(), applyNoise('keyboard', 'MDF', createRng(1)), 'upper case stays upper case');
});

test('drop-letter, double-letter and swap-letters edit one letter of one word', () => {
  const input = 'cordless drill';
  for (const out of outcomes('drop-letter', input)) {
    assert.ok(out !== null);
    assert.is(out.length, input.length - 1);
    assert.ok([...input].some((_, i) => input.slice(0, i) + input.slice(i + 1) === out), `${out} is the input less one letter`);
    assert.ok(out.startsWith('c') && / d/.test(out), 'the first letter of a word is never dropped');
  }
  for (const out of outcomes('double-letter', input)) {
    assert.ok(out !== null);
    assert.ok([...input].some((c, i) => c !== ' ' && input.slice(0, i + 1) + c + input.slice(i + 1) === out), `${out} doubles one letter`);
  }
  const swaps = outcomes('swap-letters', input);
  for (const out of swaps) {
    assert.ok(out !== null);
    assert.ok([...input].some((_, i) => input[i] !== input[i + 1] && input.slice(0, i) + input[i + 1] + input[i] + input.slice(i + 2) === out), `${out} transposes two adjacent letters`);
  }
  assert.ok(swaps.has('corldess drill') || swaps.has('cordelss drill') || swaps.has('cordless dirll'), [...swaps].join(', '));
  assert.is(applyNoise('swap-letters', 'ooo', createRng(1)), null, 'nothing to transpose in "ooo"');
});

test('drop-word keeps the head noun and numbers; merge-words removes one space', () => {
  assert.equal(outcomes('drop-word', 'cordless hammer drill'), new Set(['hammer drill', 'cordless drill']));
  assert.equal(outcomes('drop-word', '8 ft white board'), new Set(['8 ft board']), 'the number, its unit and the last word stay');
  assert.is(applyNoise('drop-word', 'cordless drill', createRng(1)), null, 'two words stay two words');
  assert.equal(outcomes('merge-words', 'cordless hammer drill'), new Set(['cordlesshammer drill', 'cordless hammerdrill']));
  assert.equal(outcomes('merge-words', '2 4 in'), new Set(['2 4in']), 'two numbers are never joined into another number');
});

test('abbreviation: real hardware abbreviations, both directions, units only after numbers', () => {
  assert.equal(outcomes('abbreviation', 'stainless steel sink'), new Set(['ss sink']));
  assert.equal(outcomes('abbreviation', 'ss sink'), new Set(['stainless steel sink']));
  assert.equal(outcomes('abbreviation', '5 gallon bucket'), new Set(['5 gal bucket']));
  assert.equal(outcomes('abbreviation', '5 gal bucket'), new Set(['5 gallon bucket']));
  assert.equal(outcomes('abbreviation', 'drill with case'), new Set(['drill w/ case']));
  assert.equal(outcomes('abbreviation', 'drill w/ case'), new Set(['drill with case']));
  assert.equal(outcomes('abbreviation', '2 inch pipe'), new Set(['2 in pipe', '2" pipe']));
  assert.equal(outcomes('abbreviation', '2 in pipe'), new Set(['2 inch pipe', '2" pipe']));
  assert.equal(outcomes('abbreviation', '2" pipe'), new Set(['2 in pipe']));
  assert.equal(outcomes('abbreviation', '8 feet board'), new Set(['8 ft board', "8' board"]));
  assert.equal(outcomes('abbreviation', '50 pound bag'), new Set(['50 lb bag']));
  assert.equal(outcomes('abbreviation', '6 pkg'), new Set(['6 package']));
  assert.is(applyNoise('abbreviation', 'lights in ceiling', createRng(1)), null, '"in" is only a unit after a number');
});

test('plural: the last content word changes number by the regular rules', () => {
  assert.is(applyNoise('plural', 'cordless drill', createRng(1)), 'cordless drills');
  assert.is(applyNoise('plural', 'drill bits', createRng(1)), 'drill bit');
  assert.is(applyNoise('plural', 'aa batteries', createRng(1)), 'aa battery');
  assert.is(applyNoise('plural', 'light switch', createRng(1)), 'light switches');
  assert.is(applyNoise('plural', 'pipe 2 in', createRng(1)), 'pipes 2 in', 'numbers and function words are skipped');
  assert.is(applyNoise('plural', 'shower glass', createRng(1)), null, '"glass" is not a plural');
  assert.is(togglePlural('Battery'), 'batteries');
  assert.is(togglePlural('boxes'), 'box');
  assert.is(togglePlural('gas'), null);
});

test('addQueryNoise: 1-2 edits by default, each kind at most once, always different, every kind occurs', () => {
  const queries = ['cordless drill bits', 'stainless steel sink with drain', '5 gallon bucket', 'led light bulbs 60 w', '2x4 lumber 8 ft', 'kitchen faucet', 'door knob set'];
  const seen = new Set<NoiseKind>();
  const rng = createRng(11);
  for (let i = 0; i < 2000; i++) {
    const q = queries[i % queries.length];
    const n = addQueryNoise(q, rng);
    assert.ok(n !== null, q);
    assert.is.not(n.text, q);
    assert.ok(n.kinds.length >= 1 && n.kinds.length <= 2, `${n.kinds.length} edits`);
    assert.is(new Set(n.kinds).size, n.kinds.length, 'no kind twice');
    n.kinds.forEach((k) => seen.add(k));
  }
  assert.equal([...seen].sort(), [...NOISE_KINDS].sort());
  const one = createRng(2);
  for (let i = 0; i < 200; i++) assert.is(addQueryNoise('cordless drill bits', one, { minEdits: 1, maxEdits: 1 })?.kinds.length, 1);
  assert.equal(addQueryNoise('cordless drill', createRng(5), { weights: { keyboard: 1, 'drop-letter': 0, 'double-letter': 0, 'swap-letters': 0, 'drop-word': 0, 'merge-words': 0, abbreviation: 0, plural: 0 } })?.kinds, ['keyboard']);
  assert.is(addQueryNoise('2x4', createRng(1)), null, 'nothing in "2x4" may change');
  assert.throws(() => addQueryNoise('a b', createRng(1), { maxEdits: 0 }), (e: Error & { code?: string }) => e.code === 'MINIELM_INVALID_ARGUMENT' && /maxEdits/.test(e.message));
  assert.throws(() => applyNoise('typo' as NoiseKind, 'a', createRng(1)), /unknown noise kind "typo"/);
});

test('numbers are never changed by any amount of noise', () => {
  const queries = ['2x4 lumber 8 ft', '3/4 in pvc pipe', '1.9 cu ft microwave', '12 2 romex wire', '60 w led bulbs', '2" pipe', 'r-13 insulation 15 in', '4x8 sheet 1/2'];
  const rng = createRng(3);
  for (let i = 0; i < 4000; i++) {
    const q = queries[i % queries.length];
    const n = addQueryNoise(q, rng, { maxEdits: 3 });
    if (!n) continue;
    assert.equal(digits(n.text), digits(q), `${q} -> ${n.text}`);
    for (const token of q.split(' ').filter((w) => /\d/.test(w) && !/"$/.test(w))) assert.ok(n.text.includes(token), `${token} survives in ${n.text}`);
  }
});

test('title phrases: lowercase 2-5 word windows as typed, entities decoded', () => {
  const title = 'Toro Personal Pace Recycler 22 in. Variable Speed Self-Propelled Gas Lawn Mower with Briggs &amp; Stratton Engine';
  const words = titleWords(title);
  assert.ok(words.includes('&') && words.includes('in') && !words.some((w) => /[A-Z]|\.$/.test(w)), words.join(' '));
  assert.equal(titleWords('Rheem 12,000 BTU (Heater), Gray'), ['rheem', '12000', 'btu', 'heater', 'gray'], 'a thousands separator is not a word break');
  const rng = createRng(4);
  for (let i = 0; i < 300; i++) {
    const p = titlePhrase(title, rng);
    if (p === null) continue;
    const w = p.split(' ');
    assert.ok(w.length >= 2 && w.length <= 5, p);
    assert.ok(words.join(' ').includes(p), `${p} is a window of the title`);
    assert.ok(!['with', 'in', '&'].includes(w[0]) && !['with', 'in', '&'].includes(w[w.length - 1]), `${p} does not start or end on a function word`);
  }
});

const titles = [
  'Simpson Strong-Tie 12-Gauge Angle',
  'BEHR Premium Textured DeckOver 1-gal. #SC-141 Tugboat Wood and Concrete Coating',
  'Whirlpool 1.9 cu. ft. Over the Range Convection Microwave in Stainless Steel with Sensor Cooking',
  'Lithonia Lighting Quantum 2-Light Black LED Emergency Fixture Unit',
  'House of Fara 3/4 in. x 3 in. x 8 ft. MDF Fluted Casing',
];
const queries = ['angle bracket', 'deck over', 'convection otr', 'microwave over stove', 'emergency light', 'mdf 3/4', 'gas mowe', 'rain shower head'];

test('denoisingPairs: seeded, distinct noisy texts, clean side from the queries or title windows', () => {
  const a = denoisingPairs({ queries, titles, count: 120, seed: 9 });
  assert.equal(denoisingPairs({ queries, titles, count: 120, seed: 9 }), a, 'same seed, same pairs');
  assert.not.equal(denoisingPairs({ queries, titles, count: 120, seed: 10 }), a, 'another seed, other pairs');
  assert.is(a.length, 120);
  assert.is(new Set(a.map((p) => p.query)).size, a.length, 'each noisy text once');
  const titleText = titles.map((t) => titleWords(t).join(' '));
  let fromTitles = 0;
  for (const p of a) {
    assert.is.not(p.query, p.rewrite);
    assert.equal(digits(p.query), digits(p.rewrite), `${p.rewrite} -> ${p.query}`);
    const isQuery = queries.includes(p.rewrite);
    if (!isQuery) fromTitles++;
    assert.ok(isQuery || titleText.some((t) => t.includes(p.rewrite)), `${p.rewrite} is a query or a title window`);
  }
  assert.ok(fromTitles > 30 && fromTitles < 90, `about half from titles (${fromTitles} of 120)`);
  const onlyQueries = denoisingPairs({ queries, count: 40, seed: 1 });
  assert.ok(onlyQueries.every((p) => queries.includes(p.rewrite)));
  // Two short queries cannot make 10,000 distinct noisy texts: it stops, with what it could make.
  const few = denoisingPairs({ queries: ['saw', 'nail'], count: 10_000, seed: 1 });
  assert.ok(few.length > 5 && few.length < 10_000, `${few.length} pairs`);
  assert.throws(() => denoisingPairs({ queries: [], count: 3, seed: 1 }), /needs queries or titles/);
});

test('mixPairs: denoising pairs make up the given share of the training set', () => {
  const real = Array.from({ length: 300 }, (_, i) => ({ query: `q${i}`, rewrite: `r${i}` }));
  const noisy = Array.from({ length: 1000 }, (_, i) => ({ query: `n${i}`, rewrite: `c${i}` }));
  for (const ratio of [0.1, DEFAULT_DENOISE_RATIO, 0.3, 0.5]) {
    const mixed = mixPairs(real, noisy, ratio, 7);
    const d = mixed.filter((p) => p.query.startsWith('n')).length;
    assert.is(d, denoisingCount(300, ratio));
    assert.ok(Math.abs(d / mixed.length - ratio) < 0.005, `share ${d / mixed.length} for ratio ${ratio}`);
    assert.equal(mixed.filter((p) => p.query.startsWith('q')).map((p) => p.query).sort(), real.map((p) => p.query).sort(), 'every real pair once');
    assert.equal(mixPairs(real, noisy, ratio, 7), mixed, 'seeded');
  }
  assert.is(denoisingCount(300, 0.3), 129);
  assert.is(mixPairs(real, noisy, 0, 1).length, 300);
  assert.is(mixPairs(real, noisy.slice(0, 20), 0.5, 1).length, 320, 'too few denoising pairs: all of them, a lower share');
  assert.throws(() => mixPairs(real, noisy, 1, 1), (e: Error & { code?: string }) => e.code === 'MINIELM_INVALID_ARGUMENT' && /\[0, 1\)/.test(e.message));
});

test.run();
