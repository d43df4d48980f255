//! HTML for the dashboard: escaping, the page layout and how money and time are written.
//!
//! Merchants choose payment metadata and account names, so every value that comes from the
//! database or the request goes through [`esc`] (text and quoted attributes) or
//! [`path_segment`] (inside a URL). Pages are also sent with a Content-Security-Policy that
//! allows only the dashboard's own script and style files: a missed escape still cannot run
//! code in an operator's browser.

use std::fmt::{self, Display, Write as _};

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;

use crate::domain::{Currency, Timestamp};

/// Text that is HTML-escaped when written (safe in element content and quoted attributes).
pub struct Esc<'a>(&'a str);

/// Escapes `s` for HTML text and double- or single-quoted attribute values.
pub fn esc(s: &str) -> Esc<'_> {
    Esc(s)
}

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// Percent-encodes `s` for use as one URL path segment or query value (everything but
/// RFC 3986 unreserved characters), so an id cannot change which route a link points to.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An amount in minor units written in major units with its code: `1234.50 USD`.
pub fn money(minor: i64, currency: Currency) -> String {
    format!(
        "{} {}",
        Decimal::new(minor, currency.exponent()),
        currency.code()
    )
}

/// A `<time>` element in UTC; the dashboard script adds the reader's local time and age.
pub fn time(t: Timestamp) -> String {
    let iso = t.to_rfc3339();
    let shown = iso.replacen('T', " ", 1).replacen('Z', " UTC", 1);
    format!(r#"<time datetime="{}">{}</time>"#, esc(&iso), esc(&shown))
}

/// An optional instant, or a dash.
pub fn maybe_time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "—".to_owned(), time)
}

/// A coloured badge for a payment or job state.
pub fn badge(state: &str) -> String {
    let class: String = state
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!(r#"<span class="badge s-{class}">{}</span>"#, esc(state))
}

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// Counts, throughput, alerts.
    Overview,
    /// The payment list and timelines.
    Payments,
    /// Dead-lettered jobs.
    Jobs,
    /// Rate pins.
    Rates,
    /// Pages shown without a session.
    None,
}

/// A one-line message at the top of a page.
#[derive(Debug, Clone)]
pub enum Notice {
    /// An action went through.
    Done(String),
    /// Something was refused or not found.
    Problem(String),
}

/// A page about to be sent: title, where it sits in the navigation, the CSRF token for the
/// sign-out form (`None` without a session), an optional notice and the body HTML.
pub struct Page<'a> {
    /// `<title>` and `<h1>`.
    pub title: &'a str,
    /// Highlighted navigation entry.
    pub nav: Nav,
    /// The session's CSRF token; `None` renders no navigation.
    pub csrf: Option<&'a str>,
    /// Message above the body.
    pub notice: Option<Notice>,
    /// Body HTML (already escaped where needed).
    pub body: String,
}

impl Page<'_> {
    /// The whole document.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.body.len() + 2048);
        let _ = write!(
            out,
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>{title} · Corridor</title>
<link rel="icon" href="/dashboard/assets/icon.svg">
<link rel="stylesheet" href="/dashboard/assets/style.css">
<script src="/dashboard/assets/dashboard.js" defer></script>
</head>
<body>
<header class="top"><a class="brand" href="/dashboard">Corridor <small>operations</small></a>"#,
            title = esc(self.title),
        );
        if let Some(csrf) = self.csrf {
            out.push_str("<nav>");
            for (nav, href, label) in [
                (Nav::Overview, "/dashboard", "Overview"),
                (Nav::Payments, "/dashboard/payments", "Payments"),
                (Nav::Jobs, "/dashboard/jobs", "Dead jobs"),
                (Nav::Rates, "/dashboard/rates", "Rate pins"),
            ] {
                let current = if nav == self.nav {
                    r#" aria-current="page""#
                } else {
                    ""
                };
                let _ = write!(out, r#"<a href="{href}"{current}>{label}</a>"#);
            }
            let _ = write!(
                out,
                r#"</nav><form class="signout" method="post" action="/dashboard/logout"><input type="hidden" name="csrf" value="{}"><button type="submit" class="link">Sign out</button></form>"#,
                esc(csrf)
            );
        }
        out.push_str("</header>\n<main>\n");
        let _ = writeln!(out, "<h1>{}</h1>", esc(self.title));
        match &self.notice {
            Some(Notice::Done(m)) => {
                let _ = writeln!(out, r#"<p class="notice ok" role="status">{}</p>"#, esc(m));
            }
            Some(Notice::Problem(m)) => {
                let _ = writeln!(out, r#"<p class="notice bad" role="alert">{}</p>"#, esc(m));
            }
            None => {}
        }
        out.push_str(&self.body);
        out.push_str("\n</main>\n</body>\n</html>\n");
        out
    }

    /// The document as a response with the dashboard's security headers.
    pub fn respond(&self, status: StatusCode) -> Response {
        let mut resp = (status, self.render()).into_response();
        secure_headers(resp.headers_mut(), "text/html; charset=utf-8");
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// Only the dashboard's own files may load; no framing, no sniffing, no inline script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets the content type and the headers every dashboard response carries.
pub fn secure_headers(headers: &mut HeaderMap, content_type: &'static str) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
}

/// A hidden CSRF field for a state-changing form.
pub fn csrf_field(csrf: &str) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(csrf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#).to_string(),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("plain ünïcode").to_string(), "plain ünïcode");
    }

    #[test]
    fn path_segments_keep_only_unreserved_characters() {
        assert_eq!(path_segment("pay_1-2.3~"), "pay_1-2.3~");
        assert_eq!(path_segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    #[test]
    fn money_is_written_in_major_units() {
        assert_eq!(money(123_450, Currency::USD), "1234.50 USD");
        assert_eq!(money(5, Currency::Usdc), "0.000005 USDC");
        let jpy: Currency = "JPY".parse().unwrap();
        assert_eq!(money(1500, jpy), "1500 JPY");
    }

    #[test]
    fn badges_get_a_class_from_the_state_only() {
        assert_eq!(
            badge("OFFRAMP_PENDING"),
            r#"<span class="badge s-offramp_pending">OFFRAMP_PENDING</span>"#
        );
        assert!(badge("\"><x").contains("s-x"));
    }
}
