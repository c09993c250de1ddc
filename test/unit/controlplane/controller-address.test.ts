/**
 * The proxy's controller addresses (src/dataplane/push/controller-address.ts): which scheme each
 * form dials with and without a push CA, what is refused, and the TLS name a replica found through
 * `dns:` is verified against (the Service name, not the address it is dialled at).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { controllerTargets, parseControllerAddress } from '../../../src/dataplane/push/controller-address.ts';
import { controllerResolver } from '../../../src/roles/proxy.ts';

test('the forms of an address, without and with a push CA', () => {
  const both = (text: string) => [parseControllerAddress(text), parseControllerAddress(text, { tls: true })];
  assert.deepEqual(both('dns:modelgate-controller.modelgate.svc:8443'), [
    { kind: 'dns', scheme: 'http', name: 'modelgate-controller.modelgate.svc', port: 8443 },
    { kind: 'dns', scheme: 'https', name: 'modelgate-controller.modelgate.svc', port: 8443 },
  ]);
  assert.deepEqual(both('dns:https://ctl.ns.svc.cluster.local.:8443'), [
    { kind: 'dns', scheme: 'https', name: 'ctl.ns.svc.cluster.local', port: 8443 },
    { kind: 'dns', scheme: 'https', name: 'ctl.ns.svc.cluster.local', port: 8443 },
  ]);
  assert.deepEqual(both('10.0.0.5:8443'), [
    { kind: 'url', url: 'http://10.0.0.5:8443', host: '10.0.0.5' },
    { kind: 'url', url: 'https://10.0.0.5:8443', host: '10.0.0.5' },
  ]);
  assert.deepEqual(both('[fd00::5]:8443'), [
    { kind: 'url', url: 'http://[fd00::5]:8443', host: '[fd00::5]' },
    { kind: 'url', url: 'https://[fd00::5]:8443', host: '[fd00::5]' },
  ]);
  assert.deepEqual(parseControllerAddress('https://ctl.example.com:8443/'), {
    kind: 'url',
    url: 'https://ctl.example.com:8443',
    host: 'ctl.example.com',
  });
  assert.deepEqual(parseControllerAddress('http://127.0.0.1:8443'), {
    kind: 'url',
    url: 'http://127.0.0.1:8443',
    host: '127.0.0.1',
  });
});

test('with a push CA, a plaintext address is refused; malformed addresses are refused', () => {
  for (const text of ['http://10.0.0.5:8443', 'dns:http://ctl.ns.svc:8443'])
    assert.match(
      String(parseControllerAddress(text, { tls: true })),
      /plaintext http while a push CA is given; use https/,
      text,
    );
  for (const [text, why] of [
    ['dns:ctl.ns.svc', /expected dns:NAME:PORT/],
    ['dns:10.0.0.5:8443', /NAME a DNS name/],
    ['dns:ctl.ns.svc:99999', /expected dns:NAME:PORT/],
    ['dns:ftp://ctl:8443', /expected dns:NAME:PORT/],
    ['ctl.ns.svc', /expected https:\/\/HOST:PORT/],
    ['ftp://ctl:8443', /the scheme must be http or https/],
    ['https://user:pw@ctl:8443', /no credentials/],
    ['https://ctl:8443/?x=1', /no credentials, query or fragment/],
  ] as const)
    assert.match(String(parseControllerAddress(text)), why, text);
});

test('dns: names are resolved on every call; https replicas are verified against the Service name', async () => {
  const answers = new Map([
    ['ctl.ns.svc.cluster.local', ['10.0.0.5', 'fd00::5']],
    ['other.ns.svc', ['10.0.0.9']],
  ]);
  const asked: string[] = [];
  const lookup = async (name: string) => {
    asked.push(name);
    return answers.get(name) ?? [];
  };
  const withCa = controllerTargets(['dns:ctl.ns.svc.cluster.local:8443'], { tls: true, lookup });
  assert.deepEqual(await withCa(), [
    { url: 'https://10.0.0.5:8443', servername: 'ctl.ns.svc.cluster.local' },
    { url: 'https://[fd00::5]:8443', servername: 'ctl.ns.svc.cluster.local' },
  ]);
  // Without a CA: plaintext dns: replicas carry no name; an https URL keeps its own host.
  const plain = controllerTargets(['dns:other.ns.svc:9000', 'https://fixed.example.com:8443'], { lookup });
  assert.deepEqual(await plain(), [
    { url: 'http://10.0.0.9:9000' },
    { url: 'https://fixed.example.com:8443' },
  ]);
  // --push-server-name: one name for every https replica (the chart resolves the cluster-domain
  // name and verifies `<service>.<namespace>.svc`).
  answers.set('ctl.ns.svc.cluster.local', ['10.0.0.6']);
  const named = controllerResolver(['dns:https://ctl.ns.svc.cluster.local:8443', 'https://10.0.0.7:8443'], {
    serverName: 'ctl.ns.svc',
    lookup,
  });
  assert.deepEqual(await named(), [
    { url: 'https://10.0.0.6:8443', servername: 'ctl.ns.svc' },
    { url: 'https://10.0.0.7:8443', servername: 'ctl.ns.svc' },
  ]);
  assert.deepEqual(asked, ['ctl.ns.svc.cluster.local', 'other.ns.svc', 'ctl.ns.svc.cluster.local']);
  // A name that resolves to nothing gives no replica (the push client logs the empty list).
  assert.deepEqual(await controllerTargets(['dns:gone.ns.svc:8443'], { lookup })(), []);
});

test('an address the resolver cannot use fails at once, not on the first dial', () => {
  assert.throws(() => controllerResolver(['nope']), /controller address nope: expected/);
  assert.throws(
    () => controllerResolver(['http://10.0.0.5:8443'], { tls: true }),
    /controller address http:\/\/10\.0\.0\.5:8443: plaintext http/,
  );
});
