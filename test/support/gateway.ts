/**
 * A gateway for tests: a GatewayProxy listening on 127.0.0.1:0 with a table compiled from YAML
 * text, a seeded random source, and logs captured in memory instead of stdout.
 */
import { Writable } from 'node:stream';
import { compile } from '../../src/compiler/compile.ts';
import { seededRandom } from '../../src/dataplane/balancers/random.ts';
import type { FilterFactory } from '../../src/dataplane/filters/filter.ts';
import { GatewayProxy, type ProxyOptions } from '../../src/dataplane/proxy.ts';
import { type Listener, listen } from '../../src/dataplane/server.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { Tracer } from '../../src/observability/tracing.ts';
import type { RoutingTable } from '../../src/routing-table/types.ts';
import { loadManifests } from '../../src/sources/files/load.ts';

export interface TestGateway {
  readonly proxy: GatewayProxy;
  readonly listener: Listener;
  readonly url: string;
  readonly logs: Record<string, unknown>[];
  /** Compiles `yaml` and applies it; throws on source problems or a refused table. */
  apply(yaml: string): RoutingTable;
  close(): Promise<void>;
}

export function compileYaml(yaml: string): RoutingTable {
  const loaded = loadManifests([{ file: 'test.yaml', text: yaml }]);
  if (loaded.problems.length > 0) throw new Error(loaded.problems.map((p) => p.message).join('; '));
  return compile(loaded.state).table;
}

export async function startGateway(
  yaml: string,
  opts: { seed?: number; filters?: FilterFactory[]; tracer?: Tracer; proxy?: Partial<ProxyOptions> } = {},
): Promise<TestGateway> {
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const { logger } = createLogger({ destination, level: 'info' });
  const proxy = new GatewayProxy({
    logger,
    random: seededRandom(opts.seed ?? 1),
    filters: opts.filters ?? [],
    tracer: opts.tracer,
    ...opts.proxy,
  });
  let version = 0;
  const apply = (text: string) => {
    const table = compileYaml(text);
    const r = proxy.apply(table, `test-${++version}`);
    if (!r.ok) throw new Error(r.reason);
    return table;
  };
  apply(yaml);
  const listener = await listen(proxy, { address: '127.0.0.1', port: 0 });
  return {
    proxy,
    listener,
    url: listener.url,
    logs,
    apply,
    close: async () => {
      await listener.close();
      proxy.jwks.close();
      await proxy.pools.destroy();
    },
  };
}

/** A ModelRoute manifest in one line per rule, for tests that need many small routes. */
export function route(name: string, spec: string, namespace = 'test'): string {
  return `apiVersion: modelgate.dev/v1alpha1\nkind: ModelRoute\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec: ${spec}\n---\n`;
}
