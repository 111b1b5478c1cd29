// Real skips. A test whose precondition is missing (a data file, a system library, a compiler) is
// registered with uvu's test.skip, so it counts in uvu's "Skipped:" line and in the "N skipped" of
// scripts/test.js, never as a pass, and the reason goes to stderr as one loud line
//   !!! SKIPPED: <test name>: <reason> !!!
// which scripts/test.js repeats in its closing summary. scripts/test.js fails a file that prints more of
// these lines than uvu counted skips (a "skip" that returned early and passed).
import type { Callback, Test } from 'uvu';

export function skipLoudly(test: Test, name: string, reason: string): void {
  console.warn(`\n!!! SKIPPED: ${name}: ${reason} !!!\n`);
  test.skip(name, () => undefined);
}

/** Registers `fn` as test `name` when `condition` holds, else a loud, counted skip saying `reason`. */
export function testIf(test: Test, condition: boolean, name: string, reason: string, fn: Callback): void {
  if (condition) test(name, fn);
  else skipLoudly(test, name, reason);
}
