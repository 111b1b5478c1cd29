// Hostile values for the API properties: what a caller in plain JavaScript (or a JSON body) can pass where a
// number, a string, an array or an options object is expected, and mutations of valid files and JSON.
import fc from 'fast-check';

/** Numbers at and around every edge a check might miss. */
export const edgeNumber: fc.Arbitrary<number> = fc.constantFrom(
  0, -0, 1, -1, 0.5, 1.5, -1.5, 2, 3, 7, 8, 9, 255, 256, 65535, 65536, 2 ** 22, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1,
  2 ** 53 - 1, 2 ** 53, 2 ** 64, 1e300, Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON, NaN, Infinity, -Infinity, -(2 ** 31), -(2 ** 53),
);

export const anyNumber: fc.Arbitrary<number> = fc.oneof(edgeNumber, fc.integer(), fc.double(), fc.integer({ min: -3, max: 70 }));

/** Strings that break naive handling: empty, whitespace, unpaired surrogates, NUL, huge, look-alike numbers. */
export const edgeString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', ' ', '\n', '\t\r\n', '0', '1', '-1', '1e309', 'NaN', 'true', 'null', '__proto__', 'constructor', 'toString', '\u0000', '\ud800', '\udfff',
    '\ufeff', '💥', 'a'.repeat(5000), '<|endoftext|>', '<|sep|>', '"', '\\', '%00', '../..', '/'),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ maxLength: 20 }),
);

/** A value that cannot be turned into a string without care (`${v}` throws for both). */
export const unprintable: fc.Arbitrary<unknown> = fc.constantFrom<() => unknown>(() => Object.create(null), () => Symbol('fuzz')).map((make) => make());

/** Scalars of every JavaScript type. */
export const hostileScalar: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: anyNumber, weight: 4 },
  { arbitrary: edgeString, weight: 3 },
  { arbitrary: fc.constantFrom(undefined, null, true, false), weight: 2 },
  { arbitrary: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), weight: 1 },
  { arbitrary: unprintable, weight: 1 },
);

/** Any value, nested: scalars, arrays, plain and prototype-less objects, typed arrays, array-likes with lying lengths, functions. */
export const hostileValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { arbitrary: hostileScalar, weight: 6 },
    { arbitrary: fc.array(tie('value'), { maxLength: 5 }), weight: 2 },
    { arbitrary: fc.dictionary(edgeString, tie('value'), { maxKeys: 4 }), weight: 2 },
    { arbitrary: fc.dictionary(edgeString, tie('value'), { maxKeys: 3, noNullPrototype: false }), weight: 1 },
    { arbitrary: fc.oneof(fc.int32Array({ maxLength: 6 }), fc.float32Array({ maxLength: 6 }), fc.uint8Array({ maxLength: 6 }), fc.float64Array({ maxLength: 6 })), weight: 1 },
    { arbitrary: fc.oneof(edgeNumber, fc.integer({ min: 0, max: 20 })).map((length) => ({ length })), weight: 1 },
    { arbitrary: fc.constant(() => 1), weight: 1 },
  ),
})).value;

/** `valid` most of the time, something hostile otherwise: keeps inputs deep in the checks, not all at the door. */
export function mostly<T>(valid: fc.Arbitrary<T>, hostile: fc.Arbitrary<unknown> = hostileValue, weight = 4): fc.Arbitrary<T | unknown> {
  return fc.oneof({ arbitrary: valid, weight }, { arbitrary: hostile, weight: 1 });
}

/**
 * An options object: each key left out or given a valid value; then, for about half of the objects, one or two
 * keys (known or not) overwritten with hostile values; now and then a hostile value instead of an object.
 */
export function options<T extends Record<string, fc.Arbitrary<unknown>>>(fields: T, extraKeys = true, requiredKeys: string[] = []): fc.Arbitrary<unknown> {
  const keys = Object.keys(fields);
  const record = fc.record(fields as Record<string, fc.Arbitrary<unknown>>, { requiredKeys }) as fc.Arbitrary<Record<string, unknown>>;
  const key = extraKeys ? fc.oneof({ arbitrary: fc.constantFrom(...keys), weight: 6 }, { arbitrary: edgeString, weight: 1 }) : fc.constantFrom(...keys);
  const corrupted = fc.tuple(record, fc.array(fc.tuple(key, hostileValue), { minLength: 1, maxLength: 2 })).map(([r, bad]) => {
    const out: Record<string, unknown> = { ...r };
    for (const [k, v] of bad) out[k] = v;
    return out;
  });
  return fc.oneof({ arbitrary: record, weight: 12 }, { arbitrary: corrupted, weight: 6 }, { arbitrary: hostileValue, weight: 1 });
}

/** Ids just outside a vocabulary of `vocab`, or not ids at all. */
export function badTokenId(vocab: number): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: fc.constantFrom(-1, vocab, vocab + 1, 2 ** 31, -(2 ** 31), 0.5, NaN), weight: 2 }, { arbitrary: hostileScalar, weight: 1 });
}

/** Token ids for a vocabulary of `vocab`: mostly in range, sometimes just outside or not ids at all. */
export function tokenId(vocab: number): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: fc.integer({ min: 0, max: vocab - 1 }), weight: 12 }, { arbitrary: badTokenId(vocab), weight: 1 });
}

/**
 * Arrays of exactly `n` items (or of 1..n when `n` is a range) from `valid`: mostly clean, sometimes with one
 * item replaced by a `bad` one, sometimes of another length.
 */
export function arrayOf(valid: fc.Arbitrary<unknown>, bad: fc.Arbitrary<unknown>, minLength: number, maxLength: number): fc.Arbitrary<unknown[]> {
  const clean = fc.array(valid, { minLength, maxLength });
  const oneBad = fc.tuple(fc.array(valid, { minLength: Math.max(1, minLength), maxLength: Math.max(1, maxLength) }), fc.nat(), bad).map(([a, at, b]) => {
    const out = [...a];
    out[at % out.length] = b;
    return out;
  });
  // Built, not filtered: fast-check's default size rarely reaches maxLength + 1, so a filter could spin for ever.
  const longer = fc.array(valid, { minLength: maxLength + 1, maxLength: maxLength + 2 });
  const otherLength = minLength > 0 ? fc.oneof(fc.array(valid, { maxLength: minLength - 1 }), longer) : longer;
  return fc.oneof({ arbitrary: clean, weight: 20 }, { arbitrary: oneBad, weight: 2 }, { arbitrary: otherLength, weight: 1 });
}

/** A token id list of 1..maxLength ids: a plain array or an Int32Array, now and then a hostile value. */
export function tokenIds(vocab: number, maxLength: number): fc.Arbitrary<unknown> {
  const ids = arrayOf(fc.integer({ min: 0, max: vocab - 1 }), badTokenId(vocab), 1, maxLength);
  return fc.oneof(
    { arbitrary: ids, weight: 16 },
    { arbitrary: fc.array(fc.integer({ min: 0, max: vocab - 1 }), { minLength: 1, maxLength }).map((a) => Int32Array.from(a)), weight: 2 },
    { arbitrary: hostileValue, weight: 1 },
  );
}

// JSON mutations: a valid document with some of its nodes replaced, removed or given a sibling.

export const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 3 },
  { arbitrary: fc.constantFrom(null, 0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 2, '', 'x', true, [], {}, [null], { '': null }), weight: 3 },
);

export interface JsonMutation {
  at: number;
  op: 'replace' | 'delete' | 'add';
  key: string;
  value: unknown;
}

export const jsonMutations: fc.Arbitrary<JsonMutation[]> = fc.array(
  fc.record({ at: fc.nat(), op: fc.constantFrom('replace', 'delete', 'add'), key: fc.oneof(edgeString, fc.constantFrom('vocab', 'model', 'merges', 'added_tokens', 'id', 'content', 'type', 'dtype', 'shape', 'data_offsets')), value: hostileJson }) as fc.Arbitrary<JsonMutation>,
  { minLength: 1, maxLength: 3 },
);

/** Applies mutations to a deep copy of `doc`: each picks one node (by index in a walk of the tree). */
export function mutateJson(doc: unknown, mutations: readonly JsonMutation[], maxDepth = Infinity): unknown {
  let root: unknown = structuredClone(doc);
  for (let m of mutations) {
    const nodes: { parent: Record<string, unknown> | unknown[] | null; key: string | number; value: unknown }[] = [];
    const walk = (parent: Record<string, unknown> | unknown[] | null, key: string | number, value: unknown, depth: number): void => {
      nodes.push({ parent, key, value });
      if (nodes.length > 5000 || depth >= maxDepth) return;
      if (Array.isArray(value)) value.forEach((v, i) => walk(value, i, v, depth + 1));
      else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(value as Record<string, unknown>, k, v, depth + 1);
    };
    walk(null, '', root, 0);
    const node = nodes[m.at % nodes.length];
    // A copy: generated values (and fc.constantFrom's shared [] and {}) must never be edited in place.
    m = { ...m, value: structuredClone(m.value) };
    if (m.op === 'add' && node.value && typeof node.value === 'object') {
      if (Array.isArray(node.value)) node.value.push(m.value);
      else (node.value as Record<string, unknown>)[m.key] = m.value;
    } else if (m.op === 'delete' && node.parent) {
      if (Array.isArray(node.parent)) node.parent.splice(node.key as number, 1);
      else delete node.parent[node.key as string];
    } else if (node.parent) {
      (node.parent as Record<string | number, unknown>)[node.key] = m.value;
    } else root = m.value;
  }
  return root;
}

// Byte mutations: truncation, byte flips, splices of random bytes, a length field rewritten.

export type ByteMutation =
  | { op: 'truncate'; at: number }
  | { op: 'flip'; at: number; xor: number }
  | { op: 'splice'; at: number; remove: number; insert: Uint8Array }
  | { op: 'u64'; at: number; value: bigint };

export const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ op: fc.constant('splice' as const), at: fc.nat(), remove: fc.nat({ max: 16 }), insert: fc.uint8Array({ maxLength: 16 }) }),
  fc.record({ op: fc.constant('u64' as const), at: fc.oneof(fc.constant(0), fc.nat()), value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 7n, 8n, 2n ** 31n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n)) }),
);

export function mutateBytes(bytes: Uint8Array, mutations: readonly ByteMutation[]): Uint8Array {
  let out = Uint8Array.from(bytes);
  for (const m of mutations) {
    const at = out.length === 0 ? 0 : m.at % (out.length + 1);
    if (m.op === 'truncate') out = out.slice(0, at);
    else if (m.op === 'flip') {
      if (out.length) out[at % out.length] ^= m.xor;
    } else if (m.op === 'splice') {
      const next = new Uint8Array(out.length - Math.min(m.remove, out.length - at) + m.insert.length);
      next.set(out.subarray(0, at));
      next.set(m.insert, at);
      next.set(out.subarray(Math.min(out.length, at + m.remove)), at + m.insert.length);
      out = next;
    } else if (out.length >= 8) {
      const pos = Math.min(at, out.length - 8);
      new DataView(out.buffer, out.byteOffset, out.byteLength).setBigUint64(pos, m.value, true);
    }
  }
  return out;
}

export const byteMutations: fc.Arbitrary<ByteMutation[]> = fc.array(byteMutation, { minLength: 1, maxLength: 4 });
