//! Who is asking: the client's real address and whether its connection is encrypted (the
//! peer's, or what a trusted reverse proxy forwards), the host it asked for and whether we
//! answer to that name (DNS rebinding), and whether the page that opens a WebSocket comes from
//! an origin we allow.
//!
//! `Forwarded` (RFC 7239) and `X-Forwarded-For`/`-Proto`/`-Host` are believed only from the
//! addresses in `web.trusted_proxies`; from anyone else they are ignored, since anyone can
//! send them.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HOST, ORIGIN};
use http::{StatusCode, Version};

use crate::config::IpRange;

/// The TCP peer of an HTTP connection, put into every request's extensions.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    /// The connection is TLS (an HTTPS listener).
    pub tls: bool,
}

/// The client behind a request, as far as we can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Client {
    /// The peer's address, or the forwarded client's when the peer is a trusted proxy.
    pub ip: IpAddr,
    /// TLS up to us, or up to a trusted proxy that says so (`proto=https`).
    pub secure: bool,
    /// The host (and port) the client asked for, if it looks like one.
    pub host: Option<String>,
}

impl Client {
    /// `https://host[:port]` or `http://…`: the origin of pages this server serves to this client.
    pub fn own_origin(&self) -> Option<String> {
        let scheme = if self.secure { "https" } else { "http" };
        normalize_origin(&format!("{scheme}://{}", self.host.as_deref()?))
    }
}

/// Works out the client of a request from `peer`, believing forwarding headers only when
/// `peer` is in one of `trusted`.
pub(crate) fn client_of(headers: &HeaderMap, peer: Peer, trusted: &[IpRange]) -> Client {
    let trusted = |ip: &IpAddr| trusted.iter().any(|range| range.contains(*ip));
    let peer_ip = peer.addr.ip().to_canonical();
    let host = header(headers, HOST.as_str()).filter(|h| is_host(h)).map(str::to_owned);
    let mut client = Client { ip: peer_ip, secure: peer.tls, host };
    if !trusted(&peer_ip) {
        return client;
    }
    let forwarded = forwarded_elements(headers);
    // The hops, the nearest last: walk back from the proxy while each hop is trusted.
    let hops: Vec<Option<IpAddr>> = if forwarded.is_empty() {
        list(headers, "x-forwarded-for").map(parse_ip).collect()
    } else {
        forwarded.iter().map(|e| e.for_.as_deref().and_then(parse_ip)).collect()
    };
    for hop in hops.iter().rev() {
        if !trusted(&client.ip) {
            break;
        }
        match hop {
            Some(ip) => client.ip = ip.to_canonical(),
            None => break,
        }
    }
    // What our proxy saw: the last element it added.
    let (proto, host) = match forwarded.last() {
        Some(e) => (e.proto.clone(), e.host.clone()),
        None => (
            list(headers, "x-forwarded-proto").last().map(str::to_owned),
            list(headers, "x-forwarded-host").last().map(str::to_owned),
        ),
    };
    if let Some(proto) = proto {
        client.secure = proto.eq_ignore_ascii_case("https") || proto.eq_ignore_ascii_case("wss");
    }
    if let Some(host) = host.filter(|h| is_host(h)) {
        client.host = Some(host);
    }
    client
}

/// Whether a WebSocket handshake's `Origin` may open a connection: the server's own origin
/// (the scheme and host this client reached), or one of `allowed`. A request without `Origin`
/// does not come from a web page (browsers always send it with a WebSocket handshake), so no
/// page can abuse the user's browser with it, and it is let through like any IRC client.
pub(crate) fn check_origin(headers: &HeaderMap, client: &Client, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = headers.get(ORIGIN) else { return Ok(()) };
    let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    let Some(origin) = origin.to_str().ok().and_then(normalize_origin) else {
        return Err(format!("Origin {shown:?} may not open an IRC connection here\n"));
    };
    if client.own_origin().as_deref() == Some(origin.as_str()) || allowed.contains(&origin) {
        return Ok(());
    }
    Err(format!(
        "Origin {shown:?} may not open an IRC connection here: only pages served by this server \
         (or origins its operator lists in web.origins) may\n"
    ))
}

/// Whether a request may be answered for the host it names.
///
/// Over plain HTTP a browser tells this server from another site only by name: a page on
/// `evil.example` whose owner points that name at this server's address (DNS rebinding, here
/// typically `127.0.0.1` or a LAN address) is same-origin with it, so the `Origin` check of
/// `/ws` passes and the page could open IRC connections from inside the visitor's machine or
/// network. So over plain HTTP the name must be an IP address, `localhost` (or under
/// `.localhost`, which browsers resolve themselves), or one of `allowed` (`web.allowed_hosts`);
/// another is refused with 421. Over TLS, here or at a trusted proxy that says so, the
/// certificate already binds the name: a browser never sends a page of `evil.example` here.
///
/// A request without `Host` comes from no browser (they always send it): HTTP/1.0 ones are
/// answered; HTTP/1.1 requires the header (RFC 9112 §3.2), so those get 400, as does a `Host`
/// that is not a host.
pub(crate) fn check_host(
    headers: &HeaderMap,
    version: Version,
    client: &Client,
    allowed: &[String],
) -> Result<(), (StatusCode, String)> {
    let Some(host) = client.host.as_deref() else {
        if headers.contains_key(HOST) {
            return Err((StatusCode::BAD_REQUEST, "the Host header is not a host name\n".into()));
        }
        if version >= Version::HTTP_11 {
            return Err((StatusCode::BAD_REQUEST, "an HTTP/1.1 request needs a Host header\n".into()));
        }
        return Ok(());
    };
    if client.secure {
        return Ok(());
    }
    let name = name_of(host);
    if is_ip_literal(&name) || name == "localhost" || name.ends_with(".localhost") || allowed.contains(&name) {
        return Ok(());
    }
    Err((
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "this server does not answer to {name:?} over plain HTTP, so that a site pointing its name \
             here (DNS rebinding) cannot reach it: use its address or HTTPS, or ask its operator to list \
             the name in web.allowed_hosts\n"
        ),
    ))
}

/// A configured host name (`web.allowed_hosts`): lower case, without a trailing dot; `None` if
/// `text` is not a bare name (a scheme, port, path or address brackets).
pub(crate) fn host_name(text: &str) -> Option<String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    ok.then_some(name)
}

/// The name of `host[:port]`, lower case, without the port or a trailing dot; an IPv6 literal
/// keeps its brackets.
fn name_of(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(host.as_str(), |(inside, _)| &host[..inside.len() + 2]),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host.as_str(),
        },
    };
    name.trim_end_matches('.').to_owned()
}

/// `192.0.2.1` or `[2001:db8::1]`: an address, which no one can point elsewhere.
fn is_ip_literal(name: &str) -> bool {
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => name.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// An origin as `scheme://host[:port]` in lower case, without a default port or trailing
/// slash; `None` if `text` is not one (a path, user info, another scheme, `null`).
pub(crate) fn normalize_origin(text: &str) -> Option<String> {
    let text = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = text.split_once("://")?;
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    if !is_host(rest) {
        return None;
    }
    let host = rest.strip_suffix(default_port).unwrap_or(rest);
    Some(format!("{scheme}://{host}"))
}

/// `host[:port]` made of the characters host names, IPv6 literals and ports use, and nothing
/// else: safe to put into a header we send back (the CSP's `connect-src`).
pub(crate) fn is_host(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 261
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The comma-separated items of every line of a header, in order.
fn list<'a>(headers: &'a HeaderMap, name: &str) -> impl DoubleEndedIterator<Item = &'a str> {
    let items: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    items.into_iter()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, possibly quoted.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[').and_then(|t| t.split_once(']')).and_then(|(ip, _)| ip.parse().ok())
}

/// One element of a `Forwarded` header: what one proxy saw.
#[derive(Debug, Default)]
struct Forwarded {
    for_: Option<String>,
    proto: Option<String>,
    host: Option<String>,
}

fn forwarded_elements(headers: &HeaderMap) -> Vec<Forwarded> {
    list(headers, "forwarded")
        .map(|element| {
            let mut f = Forwarded::default();
            for pair in element.split(';') {
                let Some((key, value)) = pair.split_once('=') else { continue };
                let value = value.trim().trim_matches('"').to_owned();
                match key.trim().to_ascii_lowercase().as_str() {
                    "for" => f.for_ = Some(value),
                    "proto" => f.proto = Some(value),
                    "host" => f.host = Some(value),
                    _ => {}
                }
            }
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(http::HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
        }
        map
    }

    const PROXY: &str = "127.0.0.2:5000";

    fn peer(addr: &str, tls: bool) -> Peer {
        Peer { addr: addr.parse().expect("addr"), tls }
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let h = headers(&[
            ("host", "chat.example.org"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let trusted: Vec<IpRange> = vec!["127.0.0.2".parse().expect("ip")];
        let untrusted = client_of(&h, peer("127.0.0.1:5000", false), &trusted);
        assert_eq!(untrusted.ip, "127.0.0.1".parse::<IpAddr>().expect("ip"));
        assert!(!untrusted.secure, "X-Forwarded-Proto from anyone is ignored");
        let proxied = client_of(&h, peer(PROXY, false), &trusted);
        assert_eq!(proxied.ip, "203.0.113.9".parse::<IpAddr>().expect("ip"));
        assert!(proxied.secure);
        assert_eq!(proxied.own_origin().as_deref(), Some("https://chat.example.org"));
    }

    #[test]
    fn a_spoofed_hop_before_the_proxy_is_not_believed() {
        // The client wrote 198.51.100.1 itself; our proxy appended the client's real address.
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9")]);
        let trusted: Vec<IpRange> = vec!["127.0.0.2".parse().expect("ip")];
        assert_eq!(client_of(&h, peer(PROXY, false), &trusted).ip, "203.0.113.9".parse::<IpAddr>().expect("ip"));
        let h =
            headers(&[("forwarded", "for=198.51.100.1, for=\"[2001:db8::7]:4711\";proto=https;host=chat.example.org")]);
        let client = client_of(&h, peer(PROXY, false), &trusted);
        assert_eq!(client.ip, "2001:db8::7".parse::<IpAddr>().expect("ip"));
        assert_eq!(client.own_origin().as_deref(), Some("https://chat.example.org"));
    }

    #[test]
    fn a_chain_of_proxies_in_a_trusted_range_is_walked_back() {
        let trusted: Vec<IpRange> = ["10.0.0.0/8", "fd00::/8"].iter().map(|r| r.parse().expect("range")).collect();
        // The client forged the first hop; 10.9.9.9, an inner proxy, added the client's real
        // address; the outer proxy 10.1.2.3 added 10.9.9.9's.
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.9.9.9")]);
        assert_eq!(
            client_of(&h, peer("10.1.2.3:4000", false), &trusted).ip,
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_of(&h, peer("[fd00::5]:4000", false), &trusted).ip,
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_of(&h, peer("[::ffff:10.1.2.3]:4000", false), &trusted).ip,
            "203.0.113.9".parse::<IpAddr>().expect("ip"),
            "an IPv4-mapped peer is the IPv4 address"
        );
        for outside in ["11.0.0.1:4000", "9.255.255.255:4000", "[fe80::1]:4000"] {
            assert_eq!(
                client_of(&h, peer(outside, false), &trusted).ip,
                outside.parse::<SocketAddr>().expect("addr").ip(),
                "{outside} is not in a trusted range"
            );
        }
    }

    #[test]
    fn over_plain_http_only_addresses_localhost_and_listed_names_are_answered() {
        let plain =
            |host: &str| Client { ip: "127.0.0.1".parse().expect("ip"), secure: false, host: Some(host.into()) };
        let allowed = vec!["chat.lan".to_owned()];
        let check = |host: &str| check_host(&headers(&[("host", host)]), Version::HTTP_11, &plain(host), &allowed);
        for ok in
            ["127.0.0.1:8080", "[::1]:8080", "localhost:8080", "LOCALHOST", "app.localhost", "chat.lan:80", "chat.lan."]
        {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for refused in
            ["evil.example:8080", "evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "chat.lan.evil"]
        {
            assert_eq!(check(refused).map_err(|(status, _)| status), Err(StatusCode::MISDIRECTED_REQUEST), "{refused}");
        }
        let secure = Client { secure: true, ..plain("evil.example") };
        let h = headers(&[("host", "evil.example")]);
        assert_eq!(check_host(&h, Version::HTTP_11, &secure, &[]), Ok(()), "the certificate binds the name");
        let hostless = Client { host: None, ..plain("") };
        assert_eq!(check_host(&HeaderMap::new(), Version::HTTP_10, &hostless, &[]), Ok(()));
        let status = |r: Result<(), (StatusCode, String)>| r.map_err(|(s, _)| s);
        assert_eq!(
            status(check_host(&HeaderMap::new(), Version::HTTP_11, &hostless, &[])),
            Err(StatusCode::BAD_REQUEST)
        );
        let bad = headers(&[("host", "a b")]);
        assert_eq!(status(check_host(&bad, Version::HTTP_10, &hostless, &[])), Err(StatusCode::BAD_REQUEST));
        assert_eq!(host_name("Chat.Example.org.").as_deref(), Some("chat.example.org"));
        for bad in ["", "chat.lan:80", "http://chat.lan", "[::1]", "a/b"] {
            assert_eq!(host_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn origins_are_compared_normalized() {
        assert_eq!(normalize_origin("HTTPS://Chat.Example.org:443/").as_deref(), Some("https://chat.example.org"));
        assert_eq!(normalize_origin("http://[::1]:6698").as_deref(), Some("http://[::1]:6698"));
        for bad in ["null", "chat.example.org", "ftp://x", "https://a/b", "https://u@h", "https://"] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
        let client = Client { ip: "127.0.0.1".parse().expect("ip"), secure: true, host: Some("localhost:6698".into()) };
        let own = headers(&[("origin", "https://localhost:6698")]);
        assert!(check_origin(&own, &client, &[]).is_ok());
        let foreign = headers(&[("origin", "https://evil.example")]);
        assert!(check_origin(&foreign, &client, &[]).is_err());
        assert!(check_origin(&foreign, &client, &["https://evil.example".into()]).is_ok());
        let wrong_scheme = headers(&[("origin", "http://localhost:6698")]);
        assert!(check_origin(&wrong_scheme, &client, &[]).is_err(), "a page over plain HTTP is another origin");
        assert!(check_origin(&HeaderMap::new(), &client, &[]).is_ok(), "no Origin: not a web page");
    }
}
