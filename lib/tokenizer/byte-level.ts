// GPT-2's reversible byte <-> printable-character table: bytes that are already printable keep their own
// code point, the others are shifted to 256+n so no token string contains whitespace or control characters.

function buildTable(): string[] {
  const printable = new Set<number>();
  for (let b = 0x21; b <= 0x7e; b++) printable.add(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.add(b);
  for (let b = 0xae; b <= 0xff; b++) printable.add(b);
  const table: string[] = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = printable.has(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + shifted++);
  }
  return table;
}

/** byteToSymbol[b] is the one-character token string for raw byte b. */
export const byteToSymbol: readonly string[] = buildTable();
