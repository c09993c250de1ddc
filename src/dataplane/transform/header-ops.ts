/**
 * Header changes (Gateway API's RequestHeaderModifier and ResponseHeaderModifier) on the headers
 * the proxy is about to send: remove, then set, then add, as Envoy applies them. Names arrive
 * lower-case from the table and node:http and undici hand headers over lower-cased, so each change
 * is one property operation; `add` keeps every value (a second line, as `set-cookie` needs).
 * Within the 1 µs budget of filter.ts: no allocation unless `add` meets a header already there.
 */
import type { CompiledHeaderOps } from '../../routing-table/types.ts';
import type { OutgoingHeaders } from '../upstream/headers.ts';

export class HeaderOps {
  private readonly remove: readonly string[];
  private readonly setNames: readonly string[];
  private readonly setValues: readonly string[];
  private readonly addNames: readonly string[];
  private readonly addValues: readonly string[];

  constructor(ops: CompiledHeaderOps) {
    this.remove = ops.remove;
    this.setNames = ops.set.map((h) => h.name);
    this.setValues = ops.set.map((h) => h.value);
    this.addNames = ops.add.map((h) => h.name);
    this.addValues = ops.add.map((h) => h.value);
  }

  apply(headers: OutgoingHeaders): void {
    for (let i = 0; i < this.remove.length; i++) delete headers[this.remove[i]!];
    for (let i = 0; i < this.setNames.length; i++) headers[this.setNames[i]!] = this.setValues[i]!;
    for (let i = 0; i < this.addNames.length; i++) {
      const name = this.addNames[i]!;
      const value = this.addValues[i]!;
      const current = headers[name];
      headers[name] =
        current === undefined ? value : Array.isArray(current) ? [...current, value] : [current, value];
    }
  }
}
