/**
 * `modelgate status`: the tables it prints from a status document, its exit codes, and the error
 * when the controller cannot be reached.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  exitCodeFor,
  fetchStatus,
  renderStatus,
  renderTable,
  status,
  statusHelp,
} from '../../../src/cli/commands/status.ts';
import type { StatusApiResponse } from '../../../src/controlplane/status-api.ts';
import { runCli } from './run-cli.ts';

const doc: StatusApiResponse = {
  controller: { identity: 'controller-0', leader: true, term: 2 },
  table: { version: '2.5', hash: 'sha256:0123456789abcdef', publishedAt: '2026-11-24T01:00:00.000Z' },
  proxies: [
    { id: 'proxy-a', connected: true, appliedVersion: '2.5', inSync: true, refused: null, lastSeen: null },
    {
      id: 'proxy-b',
      connected: true,
      appliedVersion: '2.4',
      inSync: false,
      refused: { version: '2.5', reason: 'bad regex' },
      lastSeen: null,
    },
    { id: 'proxy-c', connected: true, appliedVersion: '2.4', inSync: false, refused: null, lastSeen: null },
  ],
  routes: [
    {
      namespace: 'ml',
      name: 'chat',
      observedGeneration: 3,
      rules: 2,
      conditions: {
        Accepted: { status: 'True', reason: 'Accepted', message: '' },
        ResolvedRefs: { status: 'True', reason: 'ResolvedRefs', message: '' },
        Programmed: { status: 'False', reason: 'NotProgrammed', message: '1/3 proxies' },
      },
    },
  ],
  rollouts: [
    {
      namespace: 'ml',
      name: 'chat-v2',
      phase: 'Paused',
      currentStep: 1,
      steps: 3,
      stepWeight: 20,
      servedWeight: 20,
      message: null,
      lastVerdict: { verdict: 'Pass', message: 'ok', at: '' },
      history: [],
    },
  ],
  backends: [],
};

test('renderTable pads columns two spaces apart and trims trailing space', () => {
  assert.equal(
    renderTable(
      ['A', 'BB'],
      [
        ['xxx', ''],
        ['y', 'z'],
      ],
    ),
    'A    BB\nxxx\ny    z',
  );
});

test('the tables: proxies SYNCED/NACKED/STALE, route reasons when not True, rollout progress', () => {
  assert.equal(
    renderStatus(doc),
    [
      'CONTROLLER controller-0 (leader, term 2)  TABLE 2.5 sha256:01234  published 2026-11-24T01:00:00.000Z',
      '',
      'PROXY    SYNCED  VERSION  CONNECTED  LAST SEEN',
      'proxy-a  SYNCED  2.5      yes        -',
      'proxy-b  NACKED  2.4      yes        -',
      'proxy-c  STALE   2.4      yes        -',
      '  proxy-b refused 2.5: bad regex',
      '',
      'ROUTE    RULES  ACCEPTED  RESOLVEDREFS  PROGRAMMED  REASON',
      'ml/chat  2      True      True          False       NotProgrammed: 1/3 proxies',
      '',
      'ROLLOUT     PHASE   STEP  WEIGHT  VERDICT',
      'ml/chat-v2  Paused  2/3   20%     Pass',
    ].join('\n'),
  );
  const none = renderStatus({ ...doc, proxies: [], routes: [], rollouts: [] });
  assert.match(none, /No proxies\.\n\nNo ModelRoutes\.\n\nNo CanaryRollouts\./);
  assert.match(renderStatus({ ...doc, controller: { ...doc.controller, leader: false } }), /not the leader/);
});

test('exit code: 0 only when every connected proxy is synced and the controller leads', () => {
  assert.equal(exitCodeFor(doc), 1);
  const synced = doc.proxies[0]!;
  const gone = { ...doc.proxies[2]!, connected: false };
  assert.equal(exitCodeFor({ ...doc, proxies: [synced, gone] }), 0, 'disconnected proxies do not count');
  assert.equal(exitCodeFor({ ...doc, proxies: [] }), 0);
  assert.equal(
    exitCodeFor({ ...doc, proxies: [synced], controller: { ...doc.controller, leader: false } }),
    1,
  );
});

test('fetches /api/v1/status: table and json output; unreachable or not a controller is exit 2', async (t) => {
  const server = createServer((req, res) => {
    if (req.url === '/api/v1/status')
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const table = await status({ controller: url, output: 'table' });
  assert.equal(table.code, 1);
  assert.match(table.stdout, /proxy-b {2}NACKED/);
  const json = await status({ controller: `${url}/`, output: 'json' });
  assert.deepEqual(JSON.parse(json.stdout), doc);

  const notOurs = await status({ controller: `${url}/elsewhere`, output: 'table' });
  assert.equal(notOurs.code, 2);
  assert.match(notOurs.stderr, /elsewhere\/api\/v1\/status answered 404 \(is this a ModelGate controller/);

  const cli = await runCli(['status', '--controller', url, '-o', 'json']);
  assert.equal(cli.code, 1);
  assert.deepEqual(JSON.parse(cli.stdout), doc);

  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const down = await runCli(['status', '--controller', url]);
  assert.equal(down.code, 2);
  assert.equal(down.stdout, '');
  assert.match(
    down.stderr,
    /modelgate status: cannot reach the controller at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
  );
});

test('--help, bad flags and the top-level help', async () => {
  const help = await runCli(['status', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: modelgate status \[--controller URL\] \[-o table\|json\]/);
  assert.match(help.stdout, /default http:\/\/127\.0\.0\.1:9902/);
  const bad = await runCli(['status', '-o', 'yaml']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /-o yaml: expected table or json/);
  assert.match((await runCli(['status', '--controller', 'nope'])).stderr, /expected a URL/);
  assert.match((await runCli(['--help'])).stdout, /\n {2}status {2,}ask a controller/);
});

test('--help shows a way into a cluster that works with the chart defaults, the one the guide gives', async () => {
  // The chart binds the admin listener to the pod IP, which kubectl port-forward (loopback) cannot
  // reach, and a Deployment port-forward may land on a follower: ask the Lease holder through the
  // API server's pod proxy instead.
  assert.doesNotMatch(statusHelp, /port-forward (deploy|deployment)\//);
  const recipe = statusHelp.split('\n').filter((l) => /^ {2}(LEADER=|kubectl |modelgate status )/.test(l));
  assert.equal(recipe.length, 3, statusHelp);
  assert.match(recipe[0]!, /kubectl -n modelgate get lease modelgate-controller .*holderIdentity/);
  const guide = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'operations.md'), 'utf8');
  for (const line of recipe) assert.ok(guide.includes(line.trim()), `docs/operations.md has: ${line.trim()}`);

  // The --controller URL it gives, through a stand-in for kubectl proxy, reaches the status API.
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const url = /--controller "([^"]+)"/
      .exec(recipe[2]!)![1]!
      .replace('127.0.0.1:8001', `127.0.0.1:${port}`)
      .replace('$LEADER', 'modelgate-controller-7d9f-abcde');
    const got = await fetchStatus(url);
    assert.equal(got.controller.identity, 'controller-0');
    assert.deepEqual(seen, [
      '/api/v1/namespaces/modelgate/pods/modelgate-controller-7d9f-abcde:9902/proxy/api/v1/status',
    ]);
  } finally {
    server.close();
  }
});

test('endpoints some proxy took out of service are listed with the proxies and why', () => {
  const endpoint = (
    address: string,
    health: 'down' | 'partial',
    down: { proxy: string; unhealthy: boolean; ejected: boolean }[],
  ) => ({
    address,
    port: 8000,
    state: 'ready' as const,
    zone: null,
    health,
    reporting: 2,
    down,
  });
  const text = renderStatus({
    ...doc,
    backends: [
      {
        route: 'ml/chat',
        rule: 'llama',
        name: 'stable',
        weightPercent: 100,
        protocol: 'HTTP',
        modelRevision: null,
        role: null,
        unavailable: null,
        counts: { total: 3, ready: 3, draining: 0, up: 1, down: 1, partial: 1, unknown: 0 },
        endpoints: [
          endpoint('10.0.0.1', 'down', [
            { proxy: 'proxy-a', unhealthy: true, ejected: false },
            { proxy: 'proxy-b', unhealthy: true, ejected: true },
          ]),
          endpoint('fd00::2', 'partial', [{ proxy: 'proxy-a', unhealthy: false, ejected: true }]),
        ],
        endpointsOmitted: 0,
      },
    ],
  });
  assert.match(
    text,
    /\nBACKEND +ENDPOINT +HEALTH +OUT OF SERVICE ON\nml\/chat\/llama\/stable +10\.0\.0\.1:8000 +DOWN +proxy-a \(failing checks\), proxy-b \(failing checks, ejected\)\nml\/chat\/llama\/stable +\[fd00::2\]:8000 +PARTIAL +proxy-a \(ejected\)$/,
  );
  assert.doesNotMatch(renderStatus(doc), /OUT OF SERVICE/, 'nothing to say when every endpoint is up');
});
