//! Signing in to the dashboard.
//!
//! The admin key is typed once into a POST form and exchanged for a random session token;
//! only the token's SHA-256 is stored (`dashboard_sessions`), so a database reader cannot
//! take over a session. The token travels in an HttpOnly, SameSite=Strict cookie scoped to
//! `/dashboard` (`Secure` behind https), never in a URL. Every state-changing form also
//! carries a CSRF token derived from the session token, and requests the browser marks as
//! cross-site are refused. Failed sign-ins are limited per client address in this process.

use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::html::{Nav, Notice, Page, esc};
use super::{Dash, DashError};
use crate::api::auth::{generate_key, hash_key, hashes_equal};
use crate::api::client::ClientKey;
use crate::store::ops as ops_store;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "corridor_session";

/// How long a session lasts (12 h), both in the database and as the cookie's `Max-Age`.
pub const SESSION_SECS: i64 = 12 * 60 * 60;

/// Failed sign-ins allowed per client address within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;

/// The window failed sign-ins are counted over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    token_hash: String,
    csrf: String,
}

impl Session {
    /// The token that state-changing forms must echo.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Refuses a form whose CSRF token is not this session's, or a request the browser says
    /// comes from another site.
    pub fn verify(&self, headers: &HeaderMap, given: &str) -> Result<(), DashError> {
        same_site(headers)?;
        if hashes_equal(given, &self.csrf) {
            Ok(())
        } else {
            Err(DashError::Csrf)
        }
    }

    /// The session of this request's cookie, when it is valid now.
    pub async fn load(dash: &Dash, headers: &HeaderMap) -> Result<Option<Session>, DashError> {
        let Some(token) = cookie_token(headers) else {
            return Ok(None);
        };
        let token_hash = session_hash(dash, token);
        if !ops_store::session_valid(dash.app.store(), &token_hash, dash.app.now()).await? {
            return Ok(None);
        }
        Ok(Some(Session {
            csrf: csrf_for(token),
            token_hash,
        }))
    }
}

impl FromRequestParts<Dash> for Session {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, dash: &Dash) -> Result<Self, Self::Rejection> {
        Session::load(dash, &parts.headers)
            .await?
            .ok_or(DashError::SignIn)
    }
}

/// What the database stores of a session token: its hash bound to the admin key's hash, so
/// that changing the admin key ends every session signed in with the old one (their stored
/// hashes no longer match anything a cookie can produce) on every node, with no sweep.
fn session_hash(dash: &Dash, token: &str) -> String {
    stored_hash(&dash.app.admin_hash, token)
}

/// What is stored of session `token` signed in under the admin key whose hash is
/// `admin_hash`: a SHA-256 over both, never the token.
pub fn stored_hash(admin_hash: &str, token: &str) -> String {
    hash_key(&format!("corridor-dashboard-session:{admin_hash}:{token}"))
}

/// The CSRF token of a session: a one-way function of its secret token, so it needs no
/// storage and reveals nothing that could be used as the cookie.
fn csrf_for(token: &str) -> String {
    hex::encode(Sha256::digest(
        format!("corridor-dashboard-csrf:{token}").as_bytes(),
    ))
}

/// The session token from the `Cookie` header(s), if it looks like one of ours.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|t| {
            (16..=128).contains(&t.len())
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Refuses requests that the browser marks as coming from another site (`Sec-Fetch-Site`);
/// browsers that do not send the header are covered by SameSite=Strict and the CSRF token.
fn same_site(headers: &HeaderMap) -> Result<(), DashError> {
    match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
        Some(b"cross-site" | b"same-site") => Err(DashError::Csrf),
        _ => Ok(()),
    }
}

/// Whether the browser reached us over https, as a TLS-terminating proxy reports it.
fn over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get("forwarded")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split([';', ','])
                .any(|p| p.trim().eq_ignore_ascii_case("proto=https"))
        });
    forwarded_proto || forwarded
}

fn session_cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age={max_age}{secure}"
    ))
    .expect("cookie is built from base64url and fixed text")
}

/// The sign-in page; `problem` explains a refused attempt.
pub fn sign_in_page(problem: Option<String>, status: StatusCode) -> Response {
    let body = r#"<form class="card signin" method="post" action="/dashboard/login">
<label for="key">Admin key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus spellcheck="false">
<button type="submit">Sign in</button>
<p class="hint">The key <code>CORRIDOR_ADMIN_KEY</code> holds (printed once on first start when unset). The session lasts 12 hours.</p>
</form>"#;
    Page {
        title: "Sign in",
        nav: Nav::None,
        csrf: None,
        notice: problem.map(Notice::Problem),
        body: body.to_owned(),
    }
    .respond(status)
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The admin key.
    #[serde(default)]
    key: String,
}

/// `POST /dashboard/login`: a right key starts a session and goes to the overview; a wrong
/// one shows the form again (401); too many wrong ones answer 429 until the window passes.
pub async fn login(
    State(dash): State<Dash>,
    client: ClientKey,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, DashError> {
    same_site(&headers)?;
    if let Some(wait) = dash.limiter.blocked_for(client, Instant::now()) {
        return Err(DashError::TooManyFailures(wait.as_secs().max(1)));
    }
    let key = form.map(|Form(f)| f.key).unwrap_or_default();
    let key = key.trim();
    if key.is_empty() || key.len() > 256 || !dash.app.is_admin_hash(&hash_key(key)) {
        dash.limiter.record_failure(client, Instant::now());
        tracing::warn!(client = %client, "dashboard sign-in refused");
        return Ok(sign_in_page(
            Some("That is not the admin key.".to_owned()),
            StatusCode::UNAUTHORIZED,
        ));
    }
    dash.limiter.clear(client);
    let token = generate_key("");
    dash.app
        .service
        .start_dashboard_session(&session_hash(&dash, &token), SESSION_SECS * 1000)
        .await?;
    tracing::info!(client = %client, "dashboard session started");
    let mut resp = Redirect::to("/dashboard").into_response();
    resp.headers_mut().insert(
        SET_COOKIE,
        session_cookie(&token, SESSION_SECS, over_https(&headers)),
    );
    Ok(resp)
}

/// The sign-out form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// `POST /dashboard/logout`: ends the session (server side too) and clears the cookie.
pub async fn logout(
    State(dash): State<Dash>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, DashError> {
    if let Some(session) = Session::load(&dash, &headers).await? {
        let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
        session.verify(&headers, &csrf)?;
        dash.app
            .service
            .end_dashboard_session(&session.token_hash)
            .await?;
        tracing::info!("dashboard session ended");
    }
    let mut resp = Redirect::to("/dashboard").into_response();
    resp.headers_mut()
        .insert(SET_COOKIE, session_cookie("", 0, over_https(&headers)));
    Ok(resp)
}

/// The page answered while a client must wait.
pub fn too_many_failures(wait_secs: u64) -> Response {
    let mut resp = Page {
        title: "Too many failed sign-ins",
        nav: Nav::None,
        csrf: None,
        notice: Some(Notice::Problem(format!(
            "Too many wrong keys were tried from your address. Wait {wait_secs} seconds, then try again."
        ))),
        body: format!(
            r#"<p><a href="/dashboard">Back to the sign-in form</a> (in {} seconds).</p>"#,
            esc(&wait_secs.to_string())
        ),
    }
    .respond(StatusCode::TOO_MANY_REQUESTS);
    if let Ok(v) = HeaderValue::from_str(&wait_secs.to_string()) {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_cookie_token_is_found_among_others_and_checked() {
        let token = "A".repeat(43);
        let h = headers(&[("cookie", &format!("a=b; {COOKIE_NAME}={token}; c=d"))]);
        assert_eq!(cookie_token(&h), Some(token.as_str()));
        let h = headers(&[("cookie", &format!("{COOKIE_NAME}=<bad>"))]);
        assert_eq!(cookie_token(&h), None);
        assert_eq!(cookie_token(&HeaderMap::new()), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_only_behind_https() {
        let c = session_cookie("tok", SESSION_SECS, false);
        assert_eq!(
            c.to_str().unwrap(),
            "corridor_session=tok; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=43200"
        );
        assert!(
            session_cookie("tok", 1, true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert!(over_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(over_https(&headers(&[(
            "forwarded",
            "for=1.2.3.4;proto=https;host=x"
        )])));
        assert!(!over_https(&headers(&[("x-forwarded-proto", "http")])));
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(same_site(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_site(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(same_site(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn the_csrf_token_differs_from_the_session_token() {
        let c = csrf_for("token");
        assert_eq!(c.len(), 64);
        assert!(!c.contains("token"));
        assert_eq!(c, csrf_for("token"));
        assert_ne!(c, csrf_for("other"));
    }
}
