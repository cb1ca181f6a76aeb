#!/usr/bin/env python3
"""Writes the seed inputs of each harness into Corpus/<harness>/seed-*:
the packets and messages of the unit tests, rebuilt here so that the
fuzzer starts from inputs that reach deep into each parser. Run it again
after changing it; libFuzzer adds what it finds beside them."""
import ipaddress, os, struct

here = os.path.dirname(os.path.abspath(__file__))

def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def a6(t): return ipaddress.IPv6Address(t).packed
def a4(t): return ipaddress.IPv4Address(t).packed

def ipv6(src, dst, nh, payload, hop=64):
    return struct.pack('!IHBB', 0x60000000, len(payload), nh, hop) + a6(src) + a6(dst) + payload

def ipv4(src, dst, proto, payload, ttl=64, flags=0x4000, ident=0x1234):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), ident, flags, ttl, proto, 0, a4(src), a4(dst))
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + payload

def l4_6(src, dst, nh, seg, at):
    pseudo = a6(src) + a6(dst) + struct.pack('!IxxxB', len(seg), nh)
    c = csum(pseudo + seg)
    return seg[:at] + struct.pack('!H', c) + seg[at + 2:]

def udp6(src, dst, data, sport=5000, dport=53):
    return l4_6(src, dst, 17, struct.pack('!HHHH', sport, dport, 8 + len(data), 0) + data, 6)

def icmp6(src, dst, t, code, rest, body):
    return l4_6(src, dst, 58, struct.pack('!BBHI', t, code, 0, rest) + body, 2)

def icmp4(t, code, rest, body):
    m = struct.pack('!BBHI', t, code, 0, rest) + body
    return m[:2] + struct.pack('!H', csum(m)) + m[4:]

def ext():
    obj = struct.pack('!HBB', 8, 2, 0x0A) + b'\x01\x02\x03\x04'
    s = b'\x20\0\0\0' + obj
    return s[:2] + struct.pack('!H', csum(s)) + s[4:]

c6, s4in6, s4, pool = '2001:db8:1::2', '2001:db8:64::cb00:7102', '203.0.113.2', '192.0.2.128'
c4, c4in6, s6 = '198.51.100.2', '2001:db8:64::c633:6402', '2001:db8:2::3'
vnet = bytes(10)
udp4 = struct.pack('!HHHH', 53, 5000, 12, 0) + b'abcd'
quoted4 = ipv4(pool, s4, 17, struct.pack('!HHHH', 5000, 9, 200, 0) + bytes(100))[:128]
quoted6 = ipv6(c4in6, s6, 17, udp6(c4in6, s6, bytes(200)))[:128]
engine = {
    'udp6': ipv6(c6, s4in6, 17, udp6(c6, s4in6, b'hello')),
    'echo6': ipv6(c6, s4in6, 58, icmp6(c6, s4in6, 128, 0, 0x00010001, bytes(32))),
    'udp4': ipv4(s4, pool, 17, udp4),
    'udp4-eam': ipv4(c4, '203.0.113.3', 17, udp4),
    'echo4': ipv4(s4, pool, 1, icmp4(0, 0, 0x00010001, bytes(32))),
    'error4-ext': ipv4('198.51.100.1', pool, 1, icmp4(11, 0, 32 << 16, quoted4 + ext())),
    'error6-ext': ipv6(s6, c4in6, 58, icmp6(s6, c4in6, 1, 4, 16 << 24, quoted6 + ext())),
    'ptb6': ipv6(s6, c4in6, 58, icmp6(s6, c4in6, 2, 0, 1400, quoted6)),
    'fragment6': ipv6(c6, s4in6, 44, struct.pack('!BBHI', 17, 0, 1, 9) + udp6(c6, s4in6, bytes(40))),
    'atomic6': ipv6(c6, s4in6, 44, struct.pack('!BBHI', 17, 0, 0, 9) + udp6(c6, s4in6, bytes(40))),
    'routing6': ipv6(c6, s4in6, 43, bytes([17, 2, 0, 1, 0, 0, 0, 0]) + a6('2001:db8::9') + udp6(c6, s4in6, b'')),
    'fragment4': ipv4(s4, pool, 17, udp4 + bytes(2000), flags=0x2000),
}
sbf = '2001:db8:c000:201:'
peer = ipaddress.IPv6Address('2001:db8:c000:201::').packed[:8]
sixbedfour = {
    'rs': b'\0' + a4('198.51.100.7') + struct.pack('!H', 50000) + ipv6('fe80::1', 'ff02::2', 58, icmp6('fe80::1', 'ff02::2', 133, 0, 0, b''), hop=255),
    'data': b'\0' + a4('198.51.100.7') + struct.pack('!H', 50000) + ipv6('2001:db8:c000:201:c633:6407:c350:1', '2001:db8:2::10', 17, udp6('2001:db8:c000:201:c633:6407:c350:1', '2001:db8:2::10', b'x')),
    'tun': b'\1' + bytes(6) + ipv6('2001:db8:2::10', '2001:db8:c000:201:c633:6407:c350:1', 17, udp6('2001:db8:2::10', '2001:db8:c000:201:c633:6407:c350:1', b'y')),
}
def q(name, qtype, opt=True, flags=0x0100):
    wire = b''.join(bytes([len(l)]) + l.encode() for l in name.split('.') if l) + b'\0'
    m = struct.pack('!HHHHHH', 0x1234, flags, 1, 0, 0, 1 if opt else 0) + wire + struct.pack('!HH', qtype, 1)
    if opt: m += b'\0' + struct.pack('!HHIH', 41, 1232, 0x8000, 0)
    return m
def answer(name, qtype, rdata):
    wire = b''.join(bytes([len(l)]) + l.encode() for l in name.split('.') if l) + b'\0'
    return (struct.pack('!HHHHHH', 0x1234, 0x8180, 1, 1, 0, 0) + wire + struct.pack('!HH', qtype, 1)
            + b'\xc0\x0c' + struct.pack('!HHIH', qtype, 1, 300, len(rdata)) + rdata)
dns = {
    'aaaa': q('ipv4only.arpa', 28), 'a': q('example.org', 1, opt=False), 'ptr': q('2.0.0.c.ip6.arpa', 12),
    'answer-a': answer('example.org', 1, a4('192.0.0.170')), 'answer-aaaa': answer('example.org', 28, a6('2001:db8::1')),
}
config = {
    'full': open(os.path.join(here, '../../examples/full.toml'), 'rb').read(),
    'minimal': open(os.path.join(here, '../../examples/minimal.toml'), 'rb').read(),
}
control = {'status': b'{"command":"status"}', 'reload': b'{"command":"reload","config":"/etc/sixgate/sixgate.toml"}'}
# The differential harness: no offload (3 zero bytes), and super-packets.
differential = dict(engine)
differential['gso-tcp6'] = b'\1\x05\x78' + ipv6(c6, s4in6, 6, l4_6(c6, s4in6, 6, struct.pack('!HHIIBBHHH', 40000, 80, 1, 0, 0x50, 0x18, 65535, 0, 0) + bytes(2800), 16))
def udp4sum(src, dst, data, sport=53, dport=5000):
    seg = struct.pack('!HHHH', sport, dport, 8 + len(data), 0) + data
    c = csum(a4(src) + a4(dst) + struct.pack('!xBH', 17, len(seg)) + seg)
    return seg[:6] + struct.pack('!H', c) + seg[8:]
differential['udp4-sum'] = ipv4(s4, pool, 17, udp4sum(s4, pool, b'abcd'))
differential['udp4-eam-sum'] = ipv4(c4, '203.0.113.3', 17, udp4sum(c4, '203.0.113.3', b'abcd'))
differential['gso-udp4'] = b'\1\x00\x40' + ipv4(s4, pool, 17, struct.pack('!HHHH', 53, 5000, 8 + 640, 0) + bytes(640), flags=0)
mux = {
    'openssl-hello': bytes.fromhex(open(os.path.join(here, '../MuxTests/openssl-hello.hex')).read().replace('\n', '')),
    'http': b'GET /index.html HTTP/1.1\r\nUser-Agent: curl\r\nHost: www.example.org:8080\r\nAccept: */*\r\n\r\n',
    'http-absolute': b'GET http://other.example/x HTTP/1.1\r\nHost: www.example.org\r\n\r\n',
}
for harness, seeds, prefix in [('mux', mux, b''), ('engine', engine, vnet), ('differential', {k: v for k, v in differential.items() if k.startswith('gso')}, b''),
                               ('differential', {k: v for k, v in differential.items() if not k.startswith('gso')}, bytes(3)), ('sixbedfour', sixbedfour, b''), ('dns', dns, b''), ('dns64', dns, b''),
                               ('config', config, b''), ('control', control, b'')]:
    d = os.path.join(here, 'Corpus', harness)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        open(os.path.join(d, 'seed-' + name), 'wb').write(prefix + data)
