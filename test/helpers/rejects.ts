// Awaits `run` and asserts it rejects with a message matching `message` (uvu's assert has no async form).
import * as assert from 'uvu/assert';

export async function rejects(run: () => Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await run();
  } catch (err) {
    assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable(`expected a rejection matching ${message}`);
}
