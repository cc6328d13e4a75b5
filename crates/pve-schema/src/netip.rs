//! The parts of Perl's `Net::IP` (1.26, as shipped with PVE) that PVE's firewall formats rely
//! on: `new` for a single address, a prefix (`a/len`) or a range (`a-b`), with its error
//! texts. Only what `IPorCIDR` and `pve-fw-addr-spec` can reach is ported; the `a + n`
//! notation is not (see [`parse`]). Source: Net::IP 1.26 `IP.pm` (`ip_normalize`,
//! `ip_get_version`, `ip_is_ipv4`, `ip_is_ipv6`, `ip_check_prefix`, `set`).

/// `ip_is_ipv4`: short forms (`10`, `10.1`) count as IPv4. `Err` carries `$ERROR`.
fn is_ipv4(ip: &str) -> Result<(), String> {
    if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("Invalid chars in IP {ip}"));
    }
    if ip.starts_with('.') {
        return Err(format!("Invalid IP {ip} - starts with a dot"));
    }
    if ip.ends_with('.') {
        return Err(format!("Invalid IP {ip} - ends with a dot"));
    }
    if !ip.contains('.') && ip.parse::<u64>().is_ok_and(|n| n < 256) {
        return Ok(());
    }
    if ip.matches('.').count() >= 4 {
        return Err(format!("Invalid IP address {ip}"));
    }
    if ip.contains("..") {
        return Err(format!("Empty quad in IP address {ip}"));
    }
    for quad in ip.split('.') {
        if quad.parse::<u64>().map_or(true, |q| q >= 256) {
            return Err(format!("Invalid quad in IP address {ip} - {quad}"));
        }
    }
    Ok(())
}

/// `ip_is_ipv6`. `Err(None)` when Net::IP returns false without setting `$ERROR`.
fn is_ipv6(ip: &str) -> Result<(), Option<String>> {
    let n = ip.matches(':').count();
    if n == 0 || n >= 8 {
        return Err(None);
    }
    let fields: Vec<&str> = perl_split(ip, ':');
    for (k, field) in fields.iter().enumerate() {
        if field.is_empty() {
            continue;
        }
        let hex = field.len() <= 4 && field.bytes().all(|b| b.is_ascii_hexdigit());
        if hex || (k == n && is_ipv4(field).is_ok()) {
            continue;
        }
        return Err(Some(format!("Invalid IP address {ip}")));
    }
    if ip.starts_with(':') && !ip.starts_with("::") {
        return Err(Some(format!("Invalid address {ip} (starts with :)")));
    }
    if ip.ends_with(':') && !ip.ends_with("::") {
        return Err(Some(format!("Invalid address {ip} (ends with :)")));
    }
    // `s/:(?=:)//g > 1`: count (and drop) every ':' followed by another ':'.
    let bytes = ip.as_bytes();
    let doubled = (0..bytes.len().saturating_sub(1))
        .filter(|&i| bytes[i] == b':' && bytes[i + 1] == b':')
        .count();
    if doubled > 1 {
        let squeezed: String = ip
            .char_indices()
            .filter(|&(i, c)| !(c == ':' && bytes.get(i + 1) == Some(&b':')))
            .map(|(_, c)| c)
            .collect();
        return Err(Some(format!(
            "Invalid address {squeezed} (More than one :: pattern)"
        )));
    }
    Ok(())
}

/// Perl's `split /x/`: trailing empty fields are dropped.
fn perl_split(s: &str, sep: char) -> Vec<&str> {
    let mut v: Vec<&str> = s.split(sep).collect();
    while v.last().is_some_and(|f| f.is_empty()) {
        v.pop();
    }
    v
}

/// `ip_get_version`: 4, 6, or the error Net::IP leaves in `$ERROR`.
fn get_version(ip: &str) -> Result<u8, String> {
    let v4 = if ip.contains(':') {
        None
    } else {
        match is_ipv4(ip) {
            Ok(()) => return Ok(4),
            Err(e) => Some(e),
        }
    };
    match is_ipv6(ip) {
        Ok(()) => Ok(6),
        Err(Some(e)) => Err(e),
        // Net::IP keeps the previous `$ERROR`; for a fresh process that is the IPv4 one.
        Err(None) => Err(v4.unwrap_or_else(|| format!("Invalid IP address {ip}"))),
    }
}

/// The address as a bit string (`ip_expand_address` + `ip_iptobin`). The input passed
/// [`get_version`].
fn to_bits(ip: &str, version: u8) -> Option<Vec<bool>> {
    let mut bits = Vec::with_capacity(if version == 4 { 32 } else { 128 });
    let push = |bits: &mut Vec<bool>, value: u32, width: u32| {
        for i in (0..width).rev() {
            bits.push(value >> i & 1 == 1);
        }
    };
    if version == 4 {
        // Short forms are padded with zero quads on the right: `10` is 10.0.0.0.
        let mut quads: Vec<u32> = ip
            .split('.')
            .map(|q| q.parse().ok())
            .collect::<Option<_>>()?;
        quads.resize(4, 0);
        for q in quads {
            push(&mut bits, q, 8);
        }
        return Some(bits);
    }
    let (head, tail) = match ip.split_once("::") {
        Some((h, t)) => (h, Some(t)),
        None => (ip, None),
    };
    let groups = |s: &str| -> Option<Vec<u32>> {
        let mut out = Vec::new();
        for part in s.split(':').filter(|p| !p.is_empty()) {
            if part.contains('.') {
                let v4 = to_bits(part, 4)?;
                let n = v4.iter().fold(0u32, |acc, b| acc << 1 | u32::from(*b));
                out.push(n >> 16);
                out.push(n & 0xffff);
            } else {
                out.push(u32::from_str_radix(part, 16).ok()?);
            }
        }
        Some(out)
    };
    let mut all = groups(head)?;
    if let Some(tail) = tail {
        let rest = groups(tail)?;
        let fill = 8usize.checked_sub(all.len() + rest.len())?;
        all.extend(std::iter::repeat_n(0, fill));
        all.extend(rest);
    }
    if all.len() != 8 {
        return None;
    }
    for g in all {
        push(&mut bits, g, 16);
    }
    Some(bits)
}

fn bit_string(bits: &[bool]) -> String {
    bits.iter().map(|b| if *b { '1' } else { '0' }).collect()
}

/// `ip_check_prefix`.
fn check_prefix(bits: &[bool], len: usize) -> Result<(), String> {
    if len > bits.len() {
        return Err(format!(
            "Prefix length {len} is longer than IP address ({})",
            bits.len()
        ));
    }
    if bits[len..].iter().any(|b| *b) {
        return Err(format!("Invalid prefix {}/{len}", bit_string(bits)));
    }
    Ok(())
}

/// Canonical text of an address as `ip_expand_address` prints it in range errors.
fn expanded(bits: &[bool], version: u8) -> String {
    let chunk = |c: &[bool]| c.iter().fold(0u32, |acc, b| acc << 1 | u32::from(*b));
    if version == 4 {
        bits.chunks(8)
            .map(|c| chunk(c).to_string())
            .collect::<Vec<_>>()
            .join(".")
    } else {
        bits.chunks(16)
            .map(|c| format!("{:04x}", chunk(c)))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// `Net::IP->new($data)`: the IP version (4 or 6), or `Net::IP::Error()`.
///
/// Not ported: the `a + n` notation and chained prefixes (`a/24,/24`); such input is
/// rejected with `Invalid IP address …`, while Net::IP may accept it.
pub(crate) fn parse(data: &str) -> Result<u8, String> {
    // Prefix: `^(\S+?)(/\S+)$`.
    if let Some((ip, len)) = data.split_once('/') {
        if !data.contains(char::is_whitespace) && !ip.is_empty() && !len.is_empty() {
            let version = get_version(ip)?;
            let bits = to_bits(ip, version).ok_or_else(|| format!("Invalid IP address {ip}"))?;
            // A length that is not `\d+` ends Net::IP's prefix loop: the address alone counts.
            if len.bytes().all(|b| b.is_ascii_digit()) {
                let too_long = || {
                    format!(
                        "Prefix length {len} is longer than IP address ({})",
                        bits.len()
                    )
                };
                let len: usize = len.parse().map_err(|_| too_long())?;
                check_prefix(&bits, len)?;
            }
            return Ok(version);
        }
    }
    // Range: `^(.+?)\s*\-\s*(.+)$`.
    if let Some((a, b)) = data.split_once('-') {
        let (a, b) = (a.trim_end(), b.trim_start());
        if !a.is_empty() && !b.is_empty() {
            let version = get_version(a)?;
            let begin = to_bits(a, version).ok_or_else(|| format!("Invalid IP address {a}"))?;
            let end_version = get_version(b)?;
            let end = to_bits(b, end_version).ok_or_else(|| format!("Invalid IP address {b}"))?;
            let (bs, es) = (expanded(&begin, version), expanded(&end, end_version));
            if end_version != version {
                return Err(format!(
                    "Begin and End addresses have different IP versions - {bs} - {es}"
                ));
            }
            if begin > end {
                return Err(format!(
                    "Begin address is greater than End address {bs} - {es}"
                ));
            }
            return Ok(version);
        }
    }
    if data.contains('+') {
        return Err(format!("Invalid IP address {data}"));
    }
    let version = get_version(data)?;
    to_bits(data, version).ok_or_else(|| format!("Invalid IP address {data}"))?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_addresses_and_short_forms() {
        assert_eq!(parse("10.0.0.1"), Ok(4));
        assert_eq!(parse("10"), Ok(4));
        assert_eq!(parse("fe80::1"), Ok(6));
        assert_eq!(parse("::ffff:10.0.0.1"), Ok(6));
        assert_eq!(
            parse("10.0.0.256").unwrap_err(),
            "Invalid quad in IP address 10.0.0.256 - 256"
        );
        assert_eq!(parse("foo").unwrap_err(), "Invalid chars in IP foo");
        assert_eq!(
            parse("10..1").unwrap_err(),
            "Empty quad in IP address 10..1"
        );
        assert_eq!(
            parse("1.2.3.4.5").unwrap_err(),
            "Invalid IP address 1.2.3.4.5"
        );
        assert_eq!(parse("fe80::g").unwrap_err(), "Invalid IP address fe80::g");
        assert_eq!(
            parse("1::2::3").unwrap_err(),
            "Invalid address 1:2:3 (More than one :: pattern)"
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(parse("10.10.0.0/16"), Ok(4));
        assert_eq!(parse("0.0.0.0/0"), Ok(4));
        assert_eq!(parse("fd00::/8"), Ok(6));
        assert_eq!(
            parse("10.10.0.1/16").unwrap_err(),
            "Invalid prefix 00001010000010100000000000000001/16"
        );
        assert_eq!(
            parse("10.0.0.0/33").unwrap_err(),
            "Prefix length 33 is longer than IP address (32)"
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(parse("10.0.0.1-10.0.0.9"), Ok(4));
        assert_eq!(parse("10.0.0.1 - 10.0.0.9"), Ok(4));
        assert_eq!(
            parse("10.0.0.9-10.0.0.1").unwrap_err(),
            "Begin address is greater than End address 10.0.0.9 - 10.0.0.1"
        );
        assert_eq!(
            parse("10.0.0.1-::1").unwrap_err(),
            "Begin and End addresses have different IP versions - 10.0.0.1 - \
             0000:0000:0000:0000:0000:0000:0000:0001"
        );
    }
}
