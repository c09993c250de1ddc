/**
 * The client's address: x-forwarded-for is believed only from trusted peers, and then the client is
 * the right-most hop that is not itself a trusted proxy.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrustedProxies } from '../../../../src/dataplane/request/client-address.ts';

describe('no trusted proxies', () => {
  const none = new TrustedProxies([]);

  test('is empty and trusts nobody', () => {
    assert.equal(none.empty, true);
    assert.equal(none.trusts('10.0.0.1'), false);
    assert.equal(none.trusts('127.0.0.1'), false);
  });

  test('the peer is the client; x-forwarded-for is ignored', () => {
    assert.equal(none.clientAddress('192.0.2.10', undefined), '192.0.2.10');
    assert.equal(none.clientAddress('192.0.2.10', '203.0.113.7'), '192.0.2.10');
    assert.equal(none.clientAddress('192.0.2.10', ['203.0.113.7', '198.51.100.1']), '192.0.2.10');
    assert.equal(none.clientAddress('2001:db8::1', '203.0.113.7'), '2001:db8::1');
  });

  test('an IPv4-mapped peer is reported as IPv4', () => {
    assert.equal(none.clientAddress('::ffff:192.0.2.10', '203.0.113.7'), '192.0.2.10');
  });
});

describe('trusted CIDRs', () => {
  const lb = new TrustedProxies(['10.0.0.0/8', '172.16.0.0/12']);

  test('is not empty and trusts addresses in its ranges only', () => {
    assert.equal(lb.empty, false);
    assert.equal(lb.trusts('10.1.2.3'), true);
    assert.equal(lb.trusts('172.31.255.255'), true);
    assert.equal(lb.trusts('172.32.0.1'), false);
    assert.equal(lb.trusts('11.0.0.1'), false);
    assert.equal(lb.trusts(undefined), false);
    assert.equal(lb.trusts(''), false);
    assert.equal(lb.trusts('not-an-ip'), false);
  });

  test('from an untrusted peer, x-forwarded-for is ignored', () => {
    assert.equal(lb.clientAddress('192.0.2.10', '203.0.113.7'), '192.0.2.10');
    assert.equal(lb.clientAddress('192.0.2.10', '10.0.0.5'), '192.0.2.10');
  });

  test('from a trusted peer without x-forwarded-for, the peer is the client', () => {
    assert.equal(lb.clientAddress('10.0.0.1', undefined), '10.0.0.1');
  });

  test('from a trusted peer, a single hop is the client', () => {
    assert.equal(lb.clientAddress('10.0.0.1', '203.0.113.7'), '203.0.113.7');
  });

  test('the right-most untrusted hop wins; what the client wrote to its left is ignored', () => {
    assert.equal(lb.clientAddress('10.0.0.1', '1.1.1.1, 203.0.113.7'), '203.0.113.7');
    assert.equal(lb.clientAddress('10.0.0.1', '1.1.1.1,2.2.2.2,203.0.113.7'), '203.0.113.7');
  });

  test('several trusted hops at the right of the chain are skipped', () => {
    assert.equal(lb.clientAddress('10.0.0.1', '1.1.1.1, 203.0.113.7, 172.16.0.9, 10.0.0.2'), '203.0.113.7');
  });

  test('a chain of trusted hops only gives its left-most entry', () => {
    assert.equal(lb.clientAddress('10.0.0.1', '10.0.0.3, 172.16.0.9, 10.0.0.2'), '10.0.0.3');
  });

  test('an array-valued header is one chain, in order', () => {
    assert.equal(lb.clientAddress('10.0.0.1', ['1.1.1.1, 203.0.113.7', '10.0.0.2']), '203.0.113.7');
    assert.equal(lb.clientAddress('10.0.0.1', ['203.0.113.7', '198.51.100.1']), '198.51.100.1');
  });

  test('empty entries are skipped; an empty header gives the peer', () => {
    assert.equal(lb.clientAddress('10.0.0.1', ' , 203.0.113.7 ,, '), '203.0.113.7');
    assert.equal(lb.clientAddress('10.0.0.1', ''), '10.0.0.1');
    assert.equal(lb.clientAddress('10.0.0.1', ' , '), '10.0.0.1');
    assert.equal(lb.clientAddress('10.0.0.1', []), '10.0.0.1');
  });

  test('a garbage entry reached while walking the chain gives the peer', () => {
    assert.equal(lb.clientAddress('10.0.0.1', 'not-an-ip'), '10.0.0.1');
    assert.equal(lb.clientAddress('10.0.0.1', '203.0.113.7, unknown, 10.0.0.2'), '10.0.0.1');
    assert.equal(lb.clientAddress('10.0.0.1', '203.0.113.7:5555'), '10.0.0.1'); // with a port
    assert.equal(lb.clientAddress('10.0.0.1', '[2001:db8::1]:443'), '10.0.0.1');
    assert.equal(lb.clientAddress('10.0.0.1', '999.0.0.1'), '10.0.0.1');
  });

  test('garbage to the left of the client is never looked at', () => {
    assert.equal(lb.clientAddress('10.0.0.1', 'junk, 203.0.113.7'), '203.0.113.7');
  });

  test('an IPv6 client through an IPv4 proxy', () => {
    assert.equal(lb.clientAddress('10.0.0.1', '2001:db8::7, 10.0.0.2'), '2001:db8::7');
  });
});

describe('IPv6 and IPv4-mapped addresses', () => {
  test('IPv6 CIDRs', () => {
    const v6 = new TrustedProxies(['fd00::/8', '2001:db8:1::/48']);
    assert.equal(v6.trusts('fd12:3456::1'), true);
    assert.equal(v6.trusts('2001:db8:1:ffff::1'), true);
    assert.equal(v6.trusts('2001:db8:2::1'), false);
    assert.equal(v6.trusts('10.0.0.1'), false);
    assert.equal(v6.clientAddress('fd00::1', '2001:db8:ffff::9, fd00::2'), '2001:db8:ffff::9');
    assert.equal(v6.clientAddress('fd00::1', '203.0.113.7, 2001:db8:1::5'), '203.0.113.7');
    assert.equal(v6.clientAddress('2001:db8:2::1', '203.0.113.7'), '2001:db8:2::1');
  });

  test('an IPv4-mapped IPv6 peer is checked as IPv4', () => {
    const lb = new TrustedProxies(['10.0.0.0/8']);
    assert.equal(lb.trusts('::ffff:10.0.0.1'), true);
    assert.equal(lb.trusts('::ffff:192.0.2.1'), false);
    assert.equal(lb.clientAddress('::ffff:10.0.0.1', '203.0.113.7'), '203.0.113.7');
    assert.equal(lb.clientAddress('::ffff:10.0.0.1', undefined), '10.0.0.1');
    assert.equal(lb.clientAddress('::ffff:192.0.2.1', '203.0.113.7'), '192.0.2.1');
  });

  test('IPv4-mapped hops are unmapped, both when skipped and when reported', () => {
    const lb = new TrustedProxies(['10.0.0.0/8']);
    assert.equal(lb.clientAddress('10.0.0.1', '::ffff:203.0.113.7, ::ffff:10.0.0.2'), '203.0.113.7');
    assert.equal(lb.clientAddress('10.0.0.1', '::ffff:10.0.0.3, 10.0.0.2'), '10.0.0.3');
  });

  test('a garbage peer is returned as it is when nothing else is believed', () => {
    const lb = new TrustedProxies(['10.0.0.0/8']);
    assert.equal(lb.clientAddress('', '203.0.113.7'), '');
  });
});

describe('bare addresses', () => {
  test('an address without /bits trusts that address only', () => {
    const one = new TrustedProxies(['10.0.0.1', '2001:db8::53']);
    assert.equal(one.trusts('10.0.0.1'), true);
    assert.equal(one.trusts('10.0.0.2'), false);
    assert.equal(one.trusts('2001:db8::53'), true);
    assert.equal(one.trusts('2001:db8::54'), false);
    assert.equal(one.clientAddress('10.0.0.1', '203.0.113.7'), '203.0.113.7');
    assert.equal(one.clientAddress('10.0.0.2', '203.0.113.7'), '10.0.0.2');
    // a hop 10.0.0.2 is not a trusted proxy, so it is the client
    assert.equal(one.clientAddress('10.0.0.1', '203.0.113.7, 10.0.0.2'), '10.0.0.2');
  });

  test('/32 and /128 are single addresses too', () => {
    const one = new TrustedProxies(['10.0.0.1/32', '2001:db8::53/128']);
    assert.equal(one.trusts('10.0.0.1'), true);
    assert.equal(one.trusts('10.0.0.2'), false);
    assert.equal(one.trusts('2001:db8::53'), true);
    assert.equal(one.trusts('2001:db8::52'), false);
  });
});

describe('invalid entries', () => {
  test('a name or garbage is refused with the entry in the message', () => {
    assert.throws(
      () => new TrustedProxies(['lb.internal']),
      /trusted proxy lb\.internal is not an IP address or CIDR/,
    );
    assert.throws(() => new TrustedProxies(['10.0.0.0/8', '']), /is not an IP address or CIDR/);
    assert.throws(() => new TrustedProxies(['/8']), /trusted proxy \/8 is not an IP address or CIDR/);
    assert.throws(() => new TrustedProxies(['10.0.0/8']), /is not an IP address or CIDR/);
  });

  test('a prefix length out of range or not a number throws', () => {
    assert.throws(() => new TrustedProxies(['10.0.0.0/33']));
    assert.throws(() => new TrustedProxies(['fd00::/129']));
    assert.throws(() => new TrustedProxies(['10.0.0.0/abc']));
    assert.throws(() => new TrustedProxies(['10.0.0.0/-1']));
  });

  test('an empty or non-decimal prefix length throws', () => {
    // Number('') === 0 and Number('0x8') === 8, so these are accepted; '10.0.0.0/' silently trusts
    // the whole IPv4 space. Config validation (isCidr) refuses them, but this class is the last line.
    assert.throws(() => new TrustedProxies(['10.0.0.0/']));
    assert.throws(() => new TrustedProxies(['10.0.0.0/0x8']));
    assert.throws(() => new TrustedProxies(['10.0.0.0/8/16']));
  });
});
