//! The SSRF guard: which addresses and URLs a webhook may be delivered to. By default
//! only public addresses over HTTPS: a tenant's endpoint URL must not let them reach the
//! server's own network (loopback, private ranges, link-local and cloud metadata,
//! carrier-grade NAT, IPv6 unique-local…). The URL is checked when saved and the address
//! again at every delivery, after DNS ([`super::deliver`] resolves through
//! [`allowed_ip`] and connects only to addresses that pass), since a name may point
//! elsewhere later. Redirects are never followed. Pure functions.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the operator allows beyond public HTTPS targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// `--webhook-allow-private`: loopback and private addresses too (tests, on-prem).
    pub allow_private: bool,
    /// `--webhook-allow-http`: plain `http://` URLs too.
    pub allow_http: bool,
}

/// Why an address is refused (`None`: a public unicast address).
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and the deprecated compatible form are the
            // IPv4 address in disguise.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            non_public_v6(v6)
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        _ if ip.is_unspecified() || a == 0 => "an unspecified address (0.0.0.0/8)",
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_private() => "a private address",
        _ if a == 169 && b == 254 => "a link-local or cloud metadata address",
        _ if a == 100 && (64..128).contains(&b) => "a carrier-grade NAT address (100.64.0.0/10)",
        _ if a == 192 && b == 0 && c == 0 => "an IETF protocol address (192.0.0.0/24)",
        _ if a == 192 && b == 0 && c == 2 => "a documentation address",
        _ if a == 198 && b == 51 && c == 100 => "a documentation address",
        _ if a == 203 && b == 0 && c == 113 => "a documentation address",
        _ if a == 198 && (b == 18 || b == 19) => "a benchmarking address (198.18.0.0/15)",
        _ if a >= 224 => "a multicast, reserved or broadcast address",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    Some(match () {
        _ if ip.is_unspecified() => "an unspecified address (::)",
        _ if ip.is_loopback() => "a loopback address",
        _ if seg[0] & 0xfe00 == 0xfc00 => "a unique local address (fc00::/7)",
        _ if seg[0] & 0xffc0 == 0xfe80 => "a link-local address (fe80::/10)",
        _ if seg[0] & 0xffc0 == 0xfec0 => "a site-local address (fec0::/10)",
        _ if seg[0] & 0xff00 == 0xff00 => "a multicast address",
        _ if seg[0] == 0x2001 && seg[1] == 0x0db8 => "a documentation address",
        // NAT64 (64:ff9b::/96) embeds an IPv4 address: judge that one.
        _ if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] => {
            let v4 = Ipv4Addr::new(
                (seg[6] >> 8) as u8,
                seg[6] as u8,
                (seg[7] >> 8) as u8,
                seg[7] as u8,
            );
            return non_public_v4(v4);
        }
        // The deprecated IPv4-compatible form (::a.b.c.d).
        _ if seg[..6] == [0, 0, 0, 0, 0, 0] => "an IPv4-compatible address (::/96)",
        _ => return None,
    })
}

/// Whether a delivery may connect to `ip` under `policy`; the reason when not.
pub fn allowed_ip(ip: IpAddr, policy: TargetPolicy) -> Result<(), String> {
    match non_public(ip) {
        Some(why) if !policy.allow_private => Err(format!(
            "{ip} is {why}; webhooks go to public addresses only (the operator can allow \
             private targets with --webhook-allow-private)"
        )),
        _ => Ok(()),
    }
}

/// A URL a webhook may use: its parts, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// `https` or `http`.
    pub https: bool,
    /// The host as written (a name, or an IP literal without brackets).
    pub host: String,
    /// The host as an address when it is an IP literal.
    pub ip: Option<IpAddr>,
}

/// Checks an endpoint URL when it is saved: absolute `https://` (or `http://` if
/// allowed), a host, no user info, at most 2048 bytes; an IP literal must pass
/// [`allowed_ip`]. Names are checked again after DNS at each delivery.
pub fn check_url(url: &str, policy: TargetPolicy) -> Result<TargetUrl, String> {
    if url.len() > 2048 {
        return Err("the URL is longer than 2048 bytes".into());
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the URL contains spaces or control characters".into());
    }
    let (https, rest) = if let Some(rest) = strip_prefix_ci(url, "https://") {
        (true, rest)
    } else if let Some(rest) = strip_prefix_ci(url, "http://") {
        if !policy.allow_http {
            return Err(
                "webhook URLs must use https:// (the operator can allow http:// with \
                 --webhook-allow-http)"
                    .into(),
            );
        }
        (false, rest)
    } else {
        return Err("a webhook URL starts with https://".into());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("the URL must not contain a user name or password".into());
    }
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or("the URL's IPv6 address is not closed with ]")?;
        if !(after.is_empty() || valid_port(after)) {
            return Err("the URL's port is not a number".into());
        }
        inside.to_owned()
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if port.is_some_and(|p| !valid_port(&format!(":{p}"))) {
            return Err("the URL's port is not a number".into());
        }
        host.to_owned()
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    let host = host.to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    if let Some(ip) = ip {
        allowed_ip(ip, policy)?;
    } else if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err("the URL's host is not a valid name".into());
    } else if !policy.allow_private && (host == "localhost" || host.ends_with(".localhost")) {
        return Err("localhost is a loopback address; webhooks go to public addresses only".into());
    }
    Ok(TargetUrl { https, host, ip })
}

fn valid_port(colon_port: &str) -> bool {
    colon_port
        .strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok_and(|n| n > 0))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges_are_refused() {
        for addr in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254", // cloud metadata
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "::127.0.0.1",
            "2001:db8::1",
        ] {
            assert!(non_public(ip(addr)).is_some(), "{addr} should be refused");
            assert!(allowed_ip(ip(addr), TargetPolicy::default()).is_err());
            let private_ok = TargetPolicy {
                allow_private: true,
                allow_http: false,
            };
            assert!(allowed_ip(ip(addr), private_ok).is_ok());
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(non_public(ip(addr)), None, "{addr} is public");
        }
    }

    #[test]
    fn urls_need_https_and_a_public_host() {
        let strict = TargetPolicy::default();
        let ok = check_url("https://hooks.example.com/tandem?x=1", strict).unwrap();
        assert!(ok.https);
        assert_eq!(ok.host, "hooks.example.com");
        assert_eq!(ok.ip, None);
        assert!(check_url("HTTPS://Example.com:8443/x", strict).is_ok());
        assert!(check_url("https://[2606:4700::1]:443/x", strict).is_ok());
        for bad in [
            "http://example.com/",
            "ftp://example.com/",
            "example.com",
            "https://",
            "https://user:pw@example.com/",
            "https://127.0.0.1/",
            "https://127.0.0.1:8080/hook",
            "https://[::1]/",
            "https://10.0.0.5/",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/",
            "https://api.localhost:3000/",
            "https://exa mple.com/",
            "https://example.com:99999/",
            "https://example.com:x/",
        ] {
            assert!(check_url(bad, strict).is_err(), "{bad} should be refused");
        }
        let open = TargetPolicy {
            allow_private: true,
            allow_http: true,
        };
        let local = check_url("http://127.0.0.1:9999/hook", open).unwrap();
        assert!(!local.https);
        assert_eq!(local.ip, Some(ip("127.0.0.1")));
        assert!(check_url("http://localhost:1/", open).is_ok());
        let http_only = TargetPolicy {
            allow_private: false,
            allow_http: true,
        };
        assert!(check_url("http://example.com/", http_only).is_ok());
        assert!(check_url("http://127.0.0.1/", http_only).is_err());
    }
}
