//! Guards at the edge, before any route: what no handler should ever see.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};

/// Refuses a request whose path or query string carries a control character (percent-encoded:
/// the wire format cannot hold a raw one). No identifier, currency or filter value contains
/// one, and some databases refuse them outright (PostgreSQL's text cannot hold a NUL), so
/// they are stopped here with a 400 instead of reaching a query.
pub async fn refuse_control_characters(req: Request, next: Next) -> Response {
    let uri = req.uri();
    if has_encoded_control(uri.path()) || uri.query().is_some_and(has_encoded_control) {
        return ApiError::new(
            Code::InvalidRequest,
            "the request URI contains a control character",
        )
        .into_response();
    }
    next.run(req).await
}

/// Whether `s` holds `%XX` decoding to a C0 control character or DEL.
fn has_encoded_control(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .is_some_and(|c| c < 0x20 || c == 0x7f)
    })
}

/// Whether a JSON text holds the escape `\u0000` inside a string: a NUL no text field may
/// carry (PostgreSQL cannot store it), refused for the whole body.
pub fn json_has_nul(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' {
            if body.get(i + 1) == Some(&b'u') && body.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            // Skip the escaped character, so `\\u0000` (a backslash, then text) is not a NUL.
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_control_characters_are_found() {
        assert!(has_encoded_control("/v1/payments/pay_%00"));
        assert!(has_encoded_control("status=%1f"));
        assert!(has_encoded_control("a=%7F"));
        assert!(!has_encoded_control("/v1/payments/pay_%20x"));
        assert!(!has_encoded_control("a=%E2%82%AC&b=%"));
        assert!(!has_encoded_control("%0"));
    }

    #[test]
    fn nul_escapes_are_found_only_where_they_are_escapes() {
        assert!(json_has_nul(br#"{"a":"x\u0000"}"#));
        assert!(!json_has_nul(br#"{"a":"x\\u0000"}"#));
        assert!(json_has_nul(br#"{"a":"x\\\u0000"}"#));
        assert!(!json_has_nul(br#"{"a":"\u00e9"}"#));
        assert!(!json_has_nul(br#"{"a":"\n"}"#));
    }
}
