//! The base URI generator (the seed's `proxmox_base_uri_generator`).

use std::net::Ipv6Addr;

use url::{Host, Url};

use crate::error::{Error, Result};

/// PVE's API port.
pub const DEFAULT_PORT: u16 = 8006;

fn invalid(input: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: "PVE host",
        input: input.to_owned(),
        reason: format!(
            "{}; write a host name or address with an optional port and scheme, e.g. pve1, \
             pve1:8006, https://pve1:8006, 10.0.0.5, [2001:db8::5]:8006",
            reason.into()
        ),
    }
}

/// Turns what a user types into the API base URL `https://host:port/api2/json`.
///
/// Accepted: `pve1`, `pve1:8006`, `https://pve1:8006`, `10.0.0.5`, `[2001:db8::5]:8006`,
/// optionally followed by `/` or `/api2/json`. The port defaults to 8006. `http://` is used
/// only when written explicitly (simulators, TLS-terminating proxies).
///
/// Rejected, with an error naming the input: empty input, whitespace, schemes other than
/// `http`/`https`, user info, query or fragment, any other path, port 0 or above 65535, and
/// a bare IPv6 address without brackets (`2001:db8::5:8006` would be ambiguous).
///
/// ```
/// let url = pve_auth::base_uri("pve1").unwrap();
/// assert_eq!(url.as_str(), "https://pve1:8006/api2/json");
/// let url = pve_auth::base_uri("[2001:db8::5]:8443").unwrap();
/// assert_eq!(url.as_str(), "https://[2001:db8::5]:8443/api2/json");
/// assert!(pve_auth::base_uri("ftp://pve1").is_err());
/// ```
pub fn base_uri(input: &str) -> Result<Url> {
    if input.is_empty() {
        return Err(invalid(input, "the host is empty"));
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(input, "it contains whitespace"));
    }

    let (scheme, rest) = match input.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "https" && scheme != "http" {
                return Err(invalid(
                    input,
                    format!("scheme {scheme:?} is not supported (only https, or http when written explicitly)"),
                ));
            }
            (scheme, rest)
        }
        None => ("https".to_owned(), input),
    };

    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !matches!(path, "" | "/" | "/api2/json" | "/api2/json/") {
        return Err(invalid(
            input,
            format!("path {path:?} is not allowed (only none, \"/\" or \"/api2/json\")"),
        ));
    }
    if authority.is_empty() {
        return Err(invalid(input, "the host is empty"));
    }
    if authority.contains('@') {
        return Err(invalid(
            input,
            "user info in the URL is not allowed (pass credentials to the builder)",
        ));
    }

    let (host, port) = split_host_port(input, authority)?;
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => parse_port(input, p)?,
    };

    let host_text = match &host {
        Host::Ipv6(addr) => format!("[{addr}]"),
        other => other.to_string(),
    };
    Url::parse(&format!("{scheme}://{host_text}:{port}/api2/json"))
        .map_err(|e| invalid(input, format!("not a valid URL ({e})")))
}

fn split_host_port<'a>(input: &str, authority: &'a str) -> Result<(Host, Option<&'a str>)> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (addr, after) = bracketed
            .split_once(']')
            .ok_or_else(|| invalid(input, "'[' without a closing ']'"))?;
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| invalid(input, format!("{addr:?} is not an IPv6 address")))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| invalid(input, "expected ':port' after ']'"))?,
            ),
        };
        return Ok((Host::Ipv6(addr), port));
    }

    let colons = authority.matches(':').count();
    if colons > 1 {
        let hint = if authority.parse::<Ipv6Addr>().is_ok() {
            format!("put an IPv6 address in brackets: [{authority}] or [{authority}]:8006")
        } else {
            "too many ':' (an IPv6 address must be in brackets, e.g. [2001:db8::5]:8006)".to_owned()
        };
        return Err(invalid(input, hint));
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(invalid(input, "the host is empty"));
    }
    let parsed = Host::parse(host)
        .map_err(|e| invalid(input, format!("{host:?} is not a valid host name ({e})")))?;
    if let Host::Ipv4(addr) = &parsed {
        // The URL standard reads `10.1`, `010.0.0.1`, `0x0a000001` or `3` as IPv4 addresses
        // (10.0.0.1, 8.0.0.1, 10.0.0.1, 0.0.0.3): a typo such as `192.168.1` would silently
        // send the password to another machine. Only the dotted quad as written is accepted.
        if addr.to_string() != host {
            return Err(invalid(
                input,
                format!(
                    "{host:?} is not a dotted-quad IPv4 address (the URL standard would read it \
                     as {addr}); write all four decimal parts, or a host name that does not \
                     end in a number"
                ),
            ));
        }
    }
    if let Host::Domain(d) = &parsed {
        // url accepts almost anything as an opaque domain; PVE hosts are DNS names.
        let ok = d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !ok {
            return Err(invalid(
                input,
                format!("{host:?} is not a valid host name (letters, digits, '-', dots)"),
            ));
        }
    }
    Ok((parsed, port))
}

fn parse_port(input: &str, port: &str) -> Result<u16> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(input, format!("port {port:?} is not a number")));
    }
    match port.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(invalid(
            input,
            format!("port {port} is out of range (1-65535)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let cases = [
            ("pve1", "https://pve1:8006/api2/json"),
            ("pve1:8006", "https://pve1:8006/api2/json"),
            ("https://pve1:8006", "https://pve1:8006/api2/json"),
            ("10.0.0.5", "https://10.0.0.5:8006/api2/json"),
            ("[2001:db8::5]:8006", "https://[2001:db8::5]:8006/api2/json"),
            ("[2001:db8::5]", "https://[2001:db8::5]:8006/api2/json"),
            (
                "pve1.example.com",
                "https://pve1.example.com:8006/api2/json",
            ),
            (
                "PVE1.Example.com:8443",
                "https://pve1.example.com:8443/api2/json",
            ),
            ("https://pve1:8006/", "https://pve1:8006/api2/json"),
            ("https://pve1:8006/api2/json", "https://pve1:8006/api2/json"),
            ("https://pve1/api2/json/", "https://pve1:8006/api2/json"),
            ("HTTPS://pve1", "https://pve1:8006/api2/json"),
            ("http://127.0.0.1:8006", "http://127.0.0.1:8006/api2/json"),
            ("http://localhost", "http://localhost:8006/api2/json"),
        ];
        for (input, want) in cases {
            let got = base_uri(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.as_str(), want, "input {input}");
        }
    }

    #[test]
    fn explicit_443_is_kept_as_a_port() {
        // Url hides the scheme's default port in its text; the port itself must still be 443.
        let url = base_uri("pve1:443").unwrap();
        assert_eq!(url.port_or_known_default(), Some(443));
        assert_eq!(url.scheme(), "https");
    }

    #[test]
    fn rejects_everything_else_naming_the_input() {
        let cases = [
            ("", "empty"),
            ("pve 1", "whitespace"),
            (" pve1", "whitespace"),
            ("ftp://pve1", "scheme"),
            ("pve1/foo", "path"),
            ("https://pve1:8006/api2/extjs", "path"),
            ("pve1?x=1", "path"),
            ("pve1:0", "out of range"),
            ("pve1:65536", "out of range"),
            ("pve1:99999999999", "out of range"),
            ("pve1:", "not a number"),
            ("pve1:abc", "not a number"),
            ("2001:db8::5", "brackets"),
            ("2001:db8::5:8006", "brackets"),
            ("[2001:db8::5", "closing"),
            ("[not-ipv6]:8006", "IPv6"),
            ("[2001:db8::5]8006", "':port'"),
            ("root@pve1", "user info"),
            ("https://", "empty"),
            (":8006", "empty"),
            ("pve_1!", "host name"),
            ("-pve1", "host name"),
            ("pve1..lan", "host name"),
            // Found by the property tests: shorthand IPv4 forms the URL standard expands.
            ("0", "dotted-quad"),
            ("192.168.1", "dotted-quad"),
            ("https://010.0.0.1:8006", "dotted-quad"),
            ("0x7f.1", "dotted-quad"),
        ];
        for (input, why) in cases {
            let err = base_uri(input).expect_err(input);
            let text = err.to_string();
            assert!(
                text.contains(&format!("{input:?}")),
                "{text} should name {input:?}"
            );
            assert!(text.contains(why), "{text} should say {why}");
        }
    }
}
