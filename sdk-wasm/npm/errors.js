// The package's error type, and the JSON check every call that takes app data uses.

/** An error from Tandem: `code` is stable (`unauthorized`, `forbidden`, `not_connected`…). */
export class TandemError extends Error {
  constructor(message, code, details) {
    super(message);
    this.name = 'TandemError';
    this.code = code;
    if (details) Object.assign(this, details);
  }
}

/** JSON text of `value`; throws `invalid_argument` when it is not JSON-serialisable. */
export const stringify = (value) => {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TandemError('value is not JSON-serialisable', 'invalid_argument');
  return json;
};
