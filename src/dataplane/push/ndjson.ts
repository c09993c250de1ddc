/**
 * Splits a byte stream into NDJSON lines. Works on Buffers and decodes each whole line once, so a
 * multi-byte character split across chunks is never mangled and a table of several MB is not
 * re-scanned or re-decoded chunk after chunk.
 */
export interface Line {
  text: string;
  /** Bytes on the wire, newline included. */
  bytes: number;
}

export class LineTooLongError extends Error {
  override name = 'LineTooLongError';
}

export class LineSplitter {
  private readonly maxBytes: number;
  private parts: Buffer[] = [];
  private size = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** The lines completed by `chunk` (empty lines skipped). Throws LineTooLongError past maxBytes. */
  push(chunk: Buffer): Line[] {
    const lines: Line[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      let whole = piece;
      if (this.parts.length > 0) {
        whole = Buffer.concat([...this.parts, piece]);
        this.parts = [];
        this.size = 0;
      }
      if (whole.length > this.maxBytes)
        throw new LineTooLongError(`message larger than ${this.maxBytes} bytes`);
      if (whole.length > 0) lines.push({ text: whole.toString('utf8'), bytes: whole.length + 1 });
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.parts.push(chunk.subarray(start));
      this.size += chunk.length - start;
      if (this.size > this.maxBytes) throw new LineTooLongError(`message larger than ${this.maxBytes} bytes`);
    }
    return lines;
  }
}
