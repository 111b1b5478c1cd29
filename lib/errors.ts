// Errors a user can cause carry a stable `code` (like sharp / classic-level) and say what to do.

export type MinielmErrorCode =
  | 'MINIELM_INVALID_ARGUMENT'
  | 'MINIELM_NOT_FOUND'
  | 'MINIELM_BAD_FILE'
  | 'MINIELM_CHECKPOINT'
  | 'MINIELM_NON_FINITE'
  | 'MINIELM_ABORTED'
  | 'MINIELM_BUSY'
  | 'MINIELM_NATIVE'
  | 'MINIELM_UNREACHABLE'
  | 'MINIELM_TIMEOUT'
  | 'MINIELM_JUDGE';

export class MinielmError extends Error {
  readonly code: MinielmErrorCode;
  constructor(code: MinielmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MinielmError';
    this.code = code;
  }
}

export function invalidArgument(message: string): MinielmError {
  return new MinielmError('MINIELM_INVALID_ARGUMENT', message);
}
