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
  | 'MINIELM_OUT_OF_MEMORY'
  | 'MINIELM_OVERLOADED'
  | 'MINIELM_UNREACHABLE'
  | 'MINIELM_TIMEOUT'
  | 'MINIELM_JUDGE'
  /** CUDA was asked for where this build or machine has no usable GPU (the message says which and why). */
  | 'MINIELM_NO_DEVICE'
  /** A CUDA call failed on the device. */
  | 'MINIELM_CUDA'
  /** The operation exists, but not on the device the model lives on (the message says what to use). */
  | 'MINIELM_UNSUPPORTED';

export class MinielmError extends Error {
  readonly code: MinielmErrorCode;
  constructor(code: MinielmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MinielmError';
    this.code = code;
  }
}

/** An error thrown by the addon (a plain Error with a MINIELM_* code) as a MinielmError; others unchanged. */
export function fromNative(err: unknown): unknown {
  if (err instanceof MinielmError || !(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('MINIELM_')) return err;
  return new MinielmError(code as MinielmErrorCode, err.message, { cause: err });
}

export function invalidArgument(message: string): MinielmError {
  return new MinielmError('MINIELM_INVALID_ARGUMENT', message);
}

/**
 * For a failed `import()` / `require.resolve` of an optional peer dependency: when `err` says `pkg` itself is
 * not installed, a MINIELM_NOT_FOUND MinielmError saying which feature needs it and how to add it; any other
 * error (the package is there but fails to load, or one of its own dependencies is missing) comes back as is.
 */
export function missingOptionalDependency(err: unknown, pkg: string, feature: string): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  const notFound = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
  if (!notFound || !(err instanceof Error) || !err.message.includes(`'${pkg}'`)) return err;
  return new MinielmError(
    'MINIELM_NOT_FOUND',
    `${feature} needs the optional package "${pkg}", which is not installed. Add it to your project with ` +
      `\`npm install ${pkg}\` (a peer dependency of minielm, left out of a plain install to keep it small).`,
    { cause: err },
  );
}

/**
 * A short rendering of any value for an error message. Unlike String(v) or a template literal it never throws
 * (a Symbol, an object without a prototype, an array holding either) and never prints a whole huge value.
 */
export function describeValue(value: unknown, max = 40): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > max ? `${value.slice(0, max)}...` : value);
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'bigint':
      return `${value}n`;
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${Object.prototype.toString.call(value).slice(8, -1)}`;
  return 'an object';
}
