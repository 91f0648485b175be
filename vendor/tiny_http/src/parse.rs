//! orchestratr patch: parsers of the request head (request line, header
//! fields, body framing, percent-decoding check), split from `client.rs`.

use ascii::AsciiString;

use crate::common::{HTTPVersion, Header, HeaderField, Method};

/// How the request body is delimited (RFC 9112 §6).
#[derive(PartialEq)]
pub(crate) enum Framing {
    None,
    Length(usize),
    Chunked,
}

pub(crate) fn body_framing(headers: &[Header]) -> Result<Framing, String> {
    let te: Vec<&str> = headers
        .iter()
        .filter(|h| h.field.equiv("Transfer-Encoding"))
        .flat_map(|h| h.value.as_str().split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !te.is_empty() {
        return if te.last().is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            Ok(Framing::Chunked)
        } else {
            Err(format!(
                "transfer-encoding '{}' is not supported",
                te.join(", ")
            ))
        };
    }
    let mut len: Option<usize> = None;
    for h in headers.iter().filter(|h| h.field.equiv("Content-Length")) {
        for v in h.value.as_str().split(',') {
            let v = v.trim();
            let n: usize = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                // Saturate absurd lengths: they are over any limit anyway.
                v.parse().unwrap_or(usize::MAX)
            } else {
                return Err(format!("invalid content-length '{v}'"));
            };
            if len.is_some_and(|l| l != n) {
                return Err("conflicting content-length headers".into());
            }
            len = Some(n);
        }
    }
    Ok(len.map_or(Framing::None, Framing::Length))
}

pub(crate) enum LineError {
    Malformed,
    Version(String),
    Target,
}

/// `METHOD SP target SP HTTP/d.d`. Versions other than 1.0 and 1.1 are
/// [`LineError::Version`]; a target that is not ASCII or not UTF-8 after
/// percent-decoding is [`LineError::Target`].
pub(crate) fn parse_request_line(line: &[u8]) -> Result<(Method, String, HTTPVersion), LineError> {
    let mut parts = line.split(|&b| b == b' ');
    let (m, t, v) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
        _ => return Err(LineError::Malformed),
    };
    if !m.iter().all(|b| b.is_ascii_graphic()) {
        return Err(LineError::Malformed);
    }
    let version = match v {
        b"HTTP/1.1" => HTTPVersion(1, 1),
        b"HTTP/1.0" => HTTPVersion(1, 0),
        [b'H', b'T', b'T', b'P', b'/', maj, b'.', min]
            if maj.is_ascii_digit() && min.is_ascii_digit() =>
        {
            return Err(LineError::Version(
                String::from_utf8_lossy(&v[5..]).into_owned(),
            ))
        }
        [b'H', b'T', b'T', b'P', b'/', maj] if maj.is_ascii_digit() => {
            return Err(LineError::Version(
                String::from_utf8_lossy(&v[5..]).into_owned(),
            ))
        }
        _ => return Err(LineError::Malformed),
    };
    if !t.iter().all(|b| b.is_ascii_graphic()) || std::str::from_utf8(&percent_decode(t)).is_err()
    {
        return Err(LineError::Target);
    }
    let method: Method = std::str::from_utf8(m)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(LineError::Malformed)?;
    let target = String::from_utf8(t.to_vec()).map_err(|_| LineError::Target)?;
    Ok((method, target, version))
}

/// `%XX` → byte; anything else is kept as is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

pub(crate) fn parse_header(line: &[u8]) -> Option<Header> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let value = &line[colon + 1..];
    let value = trim_ascii(value);
    if !value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return None;
    }
    Some(Header {
        field: HeaderField::from_bytes(name.to_vec()).ok()?,
        value: AsciiString::from_ascii(value.to_vec()).ok()?,
    })
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn request_lines() {
        let (m, p, v) = parse_request_line(b"GET /hello HTTP/1.1").ok().unwrap();
        assert!(m == Method::Get && p == "/hello" && v == HTTPVersion(1, 1));
        assert!(matches!(
            parse_request_line(b"GET / HTTP/2.0"),
            Err(LineError::Version(_))
        ));
        assert!(matches!(
            parse_request_line(b"GET /%ff HTTP/1.1"),
            Err(LineError::Target)
        ));
        assert!(matches!(
            parse_request_line(b"GET /hello"),
            Err(LineError::Malformed)
        ));
        assert!(parse_request_line(b"GET /%e2%82%ac?a=%41 HTTP/1.0").is_ok());
    }
}
