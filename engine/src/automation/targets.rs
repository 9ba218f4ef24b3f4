//! Where outbound calls may go. The address rules of the SSRF guard live here, as plain
//! functions: the outbound client (connectors) applies them to every address a name resolves
//! to, and saving a webhook, a REST hook or a connection applies them to a URL that names an
//! address outright (an IP literal or `localhost`), so such a target is refused with the field's
//! path instead of failing every delivery later.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::FieldError;

/// Whether an address is on the public internet. An IPv6 address that carries an IPv4 one
/// (mapped, compatible, NAT64, 6to4, Teredo) is judged by the IPv4 address it leads to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

/// What an IPv6 address is, as far as the guard cares.
enum V6 {
    /// Reaches this IPv4 address (or these: Teredo names a server and a client).
    Carries(Vec<Ipv4Addr>),
    /// Never a public destination.
    Special,
    Plain,
}

fn classify_v6(ip: Ipv6Addr) -> V6 {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // Unspecified and loopback first: they would otherwise read as compatible addresses.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => V6::Special,
        // IPv4-mapped `::ffff:a.b.c.d` and the deprecated IPv4-compatible `::a.b.c.d`.
        [0, 0, 0, 0, 0, 0xffff | 0, hi, lo] => V6::Carries(vec![v4(hi, lo)]),
        // NAT64 well-known prefix `64:ff9b::/96` (RFC 6052).
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => V6::Carries(vec![v4(hi, lo)]),
        // Local-use NAT64 `64:ff9b:1::/48` (RFC 8215): a translator inside the operator's own
        // network, with a prefix length (and so an IPv4 position) of its choosing. Not globally
        // reachable by definition, so never a public destination.
        [0x64, 0xff9b, 1, ..] => V6::Special,
        // 6to4 `2002::/16`: the IPv4 address is bits 16–48.
        [0x2002, hi, lo, ..] => V6::Carries(vec![v4(hi, lo)]),
        // Teredo `2001::/32`: the server in bits 32–64, the client obfuscated (inverted) in the
        // last 32 bits. Either one being private makes the address unusable.
        [0x2001, 0, server_hi, server_lo, _, _, client_hi, client_lo] => {
            V6::Carries(vec![v4(server_hi, server_lo), v4(!client_hi, !client_lo)])
        }
        // The rest of `::/8` (the IPv4-translated `::ffff:0:a.b.c.d` among it) is reserved.
        [0, ..] => V6::Special,
        _ if ip.is_multicast() => V6::Special,
        // Unique local fc00::/7, link-local fe80::/10, the deprecated site-local fec0::/10.
        [first, ..] if (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80 => V6::Special,
        [first, ..] if (first & 0xffc0) == 0xfec0 => V6::Special,
        // Documentation 2001:db8::/32 and 3fff::/20, benchmarking 2001:2::/48, discard 100::/64.
        [0x2001, 0x0db8, ..] | [0x2001, 2, 0, ..] | [0x100, 0, 0, 0, ..] => V6::Special,
        [first, ..] if (first & 0xfff0) == 0x3ff0 => V6::Special,
        _ => V6::Plain,
    }
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    match classify_v6(ip) {
        V6::Carries(v4s) => v4s.into_iter().all(is_public_v4),
        V6::Special => false,
        V6::Plain => true,
    }
}

/// Whether a host name means this machine without asking a resolver (`localhost`, any name
/// under `.localhost`, with or without the final dot).
fn is_localhost(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// The non-public address a URL names outright, if it does: an IP literal that is not public,
/// or `localhost`. Names are judged when they are resolved, by the outbound client.
pub fn private_literal(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)).filter(|ip| !is_public(*ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)).filter(|ip| !is_public(*ip)),
        url::Host::Domain(name) => is_localhost(name).then_some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    }
}

/// The operator's rule for outbound targets: private addresses are refused unless
/// `TIMIX_ALLOW_PRIVATE_TARGETS` is set (tests, on-premises receivers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Targets {
    pub allow_private: bool,
}

impl Targets {
    /// Refuses a URL (kept at `field`) that names a private address outright. A URL that does
    /// not parse passes: its own validation says what is wrong with it.
    pub fn check(&self, field: &str, url: &str) -> Result<(), FieldError> {
        if self.allow_private {
            return Ok(());
        }
        let Ok(parsed) = url::Url::parse(url.trim()) else {
            return Ok(());
        };
        match private_literal(&parsed) {
            Some(ip) => Err(FieldError::new(
                field,
                "private_target",
                format!(
                    "{field} points to {ip}, a private, loopback or link-local address that outbound \
                     calls may not reach (the operator can allow it with TIMIX_ALLOW_PRIVATE_TARGETS=1)"
                ),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public(text.parse().unwrap())
    }

    #[test]
    fn private_and_special_ipv4_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!public(ip), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "8.8.8.8"] {
            assert!(public(ip), "{ip}");
        }
    }

    #[test]
    fn ipv6_private_ranges_are_not_public() {
        for ip in [
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "ff05::2",
            "2001:db8::1",
            "3fff::1",
            "2001:2::1",
            "100::1",
        ] {
            assert!(!public(ip), "{ip}");
        }
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "2620:fe::fe",
        ] {
            assert!(public(ip), "{ip}");
        }
    }

    #[test]
    fn mapped_and_compatible_addresses_are_their_ipv4_address() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "::169.254.169.254",
            "::0.0.0.2",
        ] {
            assert!(!public(ip), "{ip}");
        }
        assert!(public("::ffff:8.8.8.8"));
        assert!(public("::8.8.8.8"));
    }

    #[test]
    fn nat64_addresses_are_their_ipv4_address_and_local_use_nat64_is_never_public() {
        for ip in [
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.1.2.3",
            "64:ff9b::192.168.0.1",
        ] {
            assert!(!public(ip), "{ip}");
        }
        assert!(public("64:ff9b::8.8.8.8"));
        // Local-use NAT64 (RFC 8215): whatever it carries, it is a translator on the
        // operator's network.
        for ip in [
            "64:ff9b:1::127.0.0.1",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:7f00:1::",
            "64:ff9b:1::8.8.8.8",
        ] {
            assert!(!public(ip), "{ip}");
        }
    }

    #[test]
    fn six_to_four_addresses_are_their_ipv4_address() {
        // 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
        for ip in [
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101::5",
        ] {
            assert!(!public(ip), "{ip}");
        }
        assert!(public("2002:808:808::1"));
    }

    #[test]
    fn teredo_addresses_are_judged_by_their_server_and_client() {
        // The server 65.54.227.120 (public) and the client 192.0.2.45 (documentation), from
        // RFC 4380's example: the client is stored inverted.
        assert!(!public("2001:0:4136:e378:8000:63bf:3fff:fdd2"));
        // Server public, client 127.0.0.1 (inverted: 80ff:fffe).
        assert!(!public("2001:0:4136:e378::80ff:fffe"));
        // Server 10.0.0.1, client 8.8.8.8 (inverted: f7f7:f7f7).
        assert!(!public("2001:0:a00:1::f7f7:f7f7"));
        // Both public.
        assert!(public("2001:0:4136:e378::f7f7:f7f7"));
    }

    #[test]
    fn literal_targets_are_refused_when_saved_unless_allowed() {
        let guarded = Targets::default();
        for url in [
            "http://127.0.0.1:8080/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
            "http://localhost/x",
            "http://LocalHost./x",
            "http://api.localhost/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://169.254.169.254/latest",
            "https://10.0.0.5/hook",
        ] {
            let refused = guarded.check("url", url).unwrap_err();
            assert_eq!(refused.field, "url");
            assert_eq!(refused.code, "private_target", "{url}");
        }
        for url in [
            "https://example.com/hook",
            "https://93.184.216.34/hook",
            "https://[2606:4700:4700::1111]/hook",
            "not a url",
        ] {
            assert!(guarded.check("url", url).is_ok(), "{url}");
        }
        let open = Targets {
            allow_private: true,
        };
        assert!(open.check("url", "http://127.0.0.1:8080/x").is_ok());
    }
}
