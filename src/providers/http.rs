//! The provider protocol over HTTP (`docs/provider-protocol.md`): [`HttpOnramp`] and
//! [`HttpOfframp`] let Corridor drive any provider that speaks it, and the wire types here are
//! shared with `corridor sim-provider` so both ends agree by construction.
//!
//! The one decision that matters is how an answer maps to [`ProviderError`]: a refusal must
//! be the provider's explicit word (a 4xx carrying `{"error","message"}`), because it ends the
//! leg for good; anything ambiguous — 5xx, timeouts, broken connections, a 4xx without the
//! error body (a proxy or a wrong URL, not the provider) — is transient, and the engine asks
//! again under the same idempotency key, which cannot move money twice.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{LegRequest, Offramp, Onramp, ProviderError, Sent, TransferStatus};

/// Default name of an HTTP onramp, as shown on legs and in webhook URLs.
pub const ONRAMP_NAME: &str = "http-onramp";
/// Default name of an HTTP offramp.
pub const OFFRAMP_NAME: &str = "http-offramp";
/// Request header carrying the transfer's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Longest provider message kept in a refusal, so a chatty provider cannot bloat payments.
const MAX_MESSAGE_CHARS: usize = 500;
/// Longest reference accepted from a provider.
const MAX_REFERENCE_CHARS: usize = 255;

/// Body of `POST {base}/transfers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitiateBody {
    /// Payment the transfer serves.
    pub payment_id: String,
    /// `onramp` or `reversal` (onramp side), `offramp` (offramp side).
    pub leg: String,
    /// Amount in minor units of `currency`.
    pub amount: i64,
    /// Currency or asset code.
    pub currency: String,
    /// Account debited (onramp) or credited (offramp, reversal).
    pub account: String,
}

/// A transfer's settlement status on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WireStatus {
    /// Not settled yet.
    Pending,
    /// Settled.
    Completed,
    /// Failed for good (`failure_reason` says why).
    Failed,
    /// A payout that was made and came back (`failure_reason` says why).
    Returned,
}

/// A transfer as a provider reports it (answer to initiate and to status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferBody {
    /// The provider's reference, unique per provider.
    pub reference: String,
    /// Payment it serves.
    pub payment_id: String,
    /// Leg it moves.
    pub leg: String,
    /// Amount in minor units of `currency`.
    pub amount: i64,
    /// Currency or asset code.
    pub currency: String,
    /// Settlement status.
    pub status: WireStatus,
    /// Why it failed, when `status` is `FAILED`.
    #[serde(default)]
    pub failure_reason: Option<String>,
}

/// The error body of every non-2xx answer; on initiate, a 4xx with it is a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `ACCOUNT_BLOCKED`.
    pub error: String,
    /// Human sentence.
    pub message: String,
}

/// Body of a signed status webhook a provider pushes to `/v1/provider-webhooks/{provider}`:
/// the one wire type, serialised by `corridor sim-provider` and parsed by Corridor's receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderWebhook {
    /// `onramp.completed`, `onramp.failed`, `offramp.completed` or `offramp.failed`.
    pub event_type: String,
    /// The provider's transfer reference.
    pub reference: String,
    /// Payment the transfer serves.
    pub payment_id: String,
}

/// Parses a provider base URL (`http://host:port/onramp`): absolute http(s), no query or
/// fragment, since paths are appended to it.
pub fn parse_base_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(format!("`{s}` must be an http:// or https:// URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{s}` must not have a query or fragment"));
    }
    Ok(url)
}

/// An HTTP client for talking to providers (and, in `sim-provider`, to Corridor): every call
/// gives up after `timeout`, and redirects are not followed, since a redirected POST could be
/// replayed somewhere else and a provider answers directly.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    // reqwest is built without a TLS crypto provider of its own; installing the process-wide
    // one is idempotent, and doing it here means no caller can build a client that panics.
    crate::tls::init();
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// One provider endpoint: its name, base URL and a client with the call timeout.
#[derive(Debug, Clone)]
struct Endpoint {
    name: String,
    base: Url,
    http: reqwest::Client,
}

impl Endpoint {
    fn new(name: &str, base_url: &str, timeout: Duration) -> Result<Endpoint, String> {
        let base = parse_base_url(base_url)?;
        Ok(Endpoint {
            name: name.to_owned(),
            base,
            http: client(timeout)?,
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("parse_base_url accepts only URLs that can be a base")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn unreachable(&self, e: reqwest::Error) -> ProviderError {
        // `without_url`: the base URL may carry credentials; the log needs only the cause.
        // A failed connect (refused, no route, DNS, TLS handshake) sent no request.
        let not_sent = e.is_connect();
        let msg = format!("{} unreachable: {}", self.name, e.without_url());
        if not_sent {
            ProviderError::NotSent(msg)
        } else {
            ProviderError::Transient(msg)
        }
    }

    async fn initiate(&self, leg: &str, req: &LegRequest) -> Result<String, ProviderError> {
        let body = InitiateBody {
            payment_id: req.payment_id.clone(),
            leg: leg.to_owned(),
            amount: req.amount,
            currency: req.currency.clone(),
            account: req.account.clone(),
        };
        let resp = self
            .http
            .post(self.url(&["transfers"]))
            .header(IDEMPOTENCY_HEADER, &req.idempotency_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        initiate_outcome(&self.name, status, &bytes, &body)
    }

    async fn status(&self, sent: &Sent) -> Result<TransferStatus, ProviderError> {
        let reference = sent.reference.as_str();
        let resp = self
            .http
            .get(self.url(&["transfers", reference]))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        status_outcome(&self.name, status, &bytes, sent)
    }
}

/// The answer of `GET /transfers?from=&to=`: the provider's statement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatementBody {
    /// Every transfer created in the window.
    pub data: Vec<TransferBody>,
}

impl Endpoint {
    async fn statement(
        &self,
        from: crate::domain::Timestamp,
        to: crate::domain::Timestamp,
    ) -> Result<Vec<super::StatementLine>, ProviderError> {
        let mut url = self.url(&["transfers"]);
        url.query_pairs_mut()
            .append_pair("from", &from.millis().to_string())
            .append_pair("to", &to.millis().to_string());
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        statement_outcome(&self.name, status, &bytes)
    }
}

/// A statement answer: `404`, `405` and `501` say the provider keeps none (a refusal: the
/// reconciliation fails with the reason); any other error is transient.
fn statement_outcome(
    name: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<Vec<super::StatementLine>, ProviderError> {
    use crate::domain::reconcile::LineStatus;
    if matches!(
        status,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
    ) {
        return Err(ProviderError::Refused(format!(
            "{name} offers no statement of its transfers ({status})"
        )));
    }
    if status != StatusCode::OK {
        return Err(ProviderError::Transient(format!(
            "{name} answered {status} to the statement"
        )));
    }
    let s: StatementBody = serde_json::from_slice(body).map_err(|e| {
        ProviderError::Transient(format!("{name} answered an unreadable statement: {e}"))
    })?;
    Ok(s.data
        .into_iter()
        .filter_map(|t| {
            Some(super::StatementLine {
                leg: t.leg.parse().ok()?,
                payment_id: t.payment_id,
                amount: t.amount,
                currency: t.currency,
                status: match t.status {
                    WireStatus::Pending => LineStatus::Pending,
                    WireStatus::Completed => LineStatus::Completed,
                    WireStatus::Failed => LineStatus::Failed,
                    WireStatus::Returned => LineStatus::Returned,
                },
            })
        })
        .collect())
}

/// Statuses that say "not now" rather than "no": timeout, same key in flight, too early,
/// rate limited. They are retried even though they are 4xx.
fn retryable_4xx(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 409 | 425 | 429)
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_MESSAGE_CHARS).collect()
}

/// What an answer to `POST /transfers` means. Pure, so the table is tested without a network.
fn initiate_outcome(
    name: &str,
    status: StatusCode,
    body: &[u8],
    sent: &InitiateBody,
) -> Result<String, ProviderError> {
    if status.is_success() {
        let t: TransferBody = serde_json::from_slice(body).map_err(|e| {
            ProviderError::Transient(format!(
                "{name} answered {status} with an unreadable transfer: {e}"
            ))
        })?;
        if t.payment_id != sent.payment_id || t.leg != sent.leg {
            return Err(ProviderError::Transient(format!(
                "{name} answered with a transfer of another payment or leg ({} {})",
                t.payment_id, t.leg
            )));
        }
        // A transfer of another amount or currency than asked for is not the one asked for:
        // the leg is not recorded and the step keeps retrying under the same key until the
        // provider answers with what was sent — or the job goes dead for an operator (money
        // may have moved, so this is never taken as a refusal that would end the leg).
        if t.amount != sent.amount || t.currency != sent.currency {
            return Err(ProviderError::Transient(format!(
                "{name} answered with a transfer of {} {} when {} {} was asked for",
                t.amount, t.currency, sent.amount, sent.currency
            )));
        }
        if t.reference.is_empty() || t.reference.chars().count() > MAX_REFERENCE_CHARS {
            return Err(ProviderError::Transient(format!(
                "{name} answered with an empty or overlong reference"
            )));
        }
        return Ok(t.reference);
    }
    if status.is_client_error() && !retryable_4xx(status) {
        // Only the provider's own error body makes a refusal; a bare 4xx may come from a
        // proxy or a misconfigured URL, and refusing on it would fail payments for nothing.
        if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
            return Err(ProviderError::Refused(truncate(&format!(
                "{name}: {}: {}",
                e.error, e.message
            ))));
        }
    }
    Err(ProviderError::Transient(format!(
        "{name} answered {status} to initiate"
    )))
}

/// What an answer to `GET /transfers/{reference}` means: only a readable `200` decides; a
/// transfer's fate is never inferred from an error, since money may have moved.
fn status_outcome(
    name: &str,
    status: StatusCode,
    body: &[u8],
    sent: &Sent,
) -> Result<TransferStatus, ProviderError> {
    let reference = sent.reference.as_str();
    if status != StatusCode::OK {
        return Err(ProviderError::Transient(format!(
            "{name} answered {status} to the status of {reference}"
        )));
    }
    let t: TransferBody = serde_json::from_slice(body).map_err(|e| {
        ProviderError::Transient(format!("{name} answered an unreadable transfer: {e}"))
    })?;
    if t.reference != reference {
        return Err(ProviderError::Transient(format!(
            "{name} answered the status of {} when asked for {reference}",
            t.reference
        )));
    }
    // Settled for another amount or currency is not this transfer settled (see initiate).
    if t.amount != sent.amount || t.currency != sent.currency {
        return Err(ProviderError::Transient(format!(
            "{name} reports {reference} as {} {} when {} {} was sent",
            t.amount, t.currency, sent.amount, sent.currency
        )));
    }
    Ok(match t.status {
        WireStatus::Pending => TransferStatus::Pending,
        WireStatus::Completed => TransferStatus::Completed,
        WireStatus::Failed => TransferStatus::Failed(truncate(
            t.failure_reason
                .as_deref()
                .unwrap_or("the provider gave no reason"),
        )),
        WireStatus::Returned => TransferStatus::Returned(truncate(
            t.failure_reason
                .as_deref()
                .unwrap_or("the payout came back"),
        )),
    })
}

/// An onramp reached over the provider protocol; reversals go to the same provider.
#[derive(Debug, Clone)]
pub struct HttpOnramp(Endpoint);

impl HttpOnramp {
    /// An onramp named `name` at `base_url`; each call gives up after `timeout`.
    pub fn new(name: &str, base_url: &str, timeout: Duration) -> Result<HttpOnramp, String> {
        Endpoint::new(name, base_url, timeout).map(HttpOnramp)
    }
}

#[async_trait]
impl Onramp for HttpOnramp {
    fn name(&self) -> &str {
        &self.0.name
    }

    async fn buy(&self, req: &LegRequest) -> Result<String, ProviderError> {
        self.0.initiate("onramp", req).await
    }

    async fn reverse(&self, req: &LegRequest) -> Result<String, ProviderError> {
        self.0.initiate("reversal", req).await
    }

    async fn status(&self, sent: &Sent) -> Result<TransferStatus, ProviderError> {
        self.0.status(sent).await
    }

    async fn statement(
        &self,
        from: crate::domain::Timestamp,
        to: crate::domain::Timestamp,
    ) -> Result<Vec<super::StatementLine>, ProviderError> {
        self.0.statement(from, to).await
    }
}

/// An offramp reached over the provider protocol.
#[derive(Debug, Clone)]
pub struct HttpOfframp(Endpoint);

impl HttpOfframp {
    /// An offramp named `name` at `base_url`; each call gives up after `timeout`.
    pub fn new(name: &str, base_url: &str, timeout: Duration) -> Result<HttpOfframp, String> {
        Endpoint::new(name, base_url, timeout).map(HttpOfframp)
    }
}

#[async_trait]
impl Offramp for HttpOfframp {
    fn name(&self) -> &str {
        &self.0.name
    }

    async fn pay_out(&self, req: &LegRequest) -> Result<String, ProviderError> {
        self.0.initiate("offramp", req).await
    }

    async fn status(&self, sent: &Sent) -> Result<TransferStatus, ProviderError> {
        self.0.status(sent).await
    }

    async fn statement(
        &self,
        from: crate::domain::Timestamp,
        to: crate::domain::Timestamp,
    ) -> Result<Vec<super::StatementLine>, ProviderError> {
        self.0.statement(from, to).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use serde_json::{Value, json};

    use super::*;

    /// What the fake provider answers for one base path: status code and raw body.
    type Script = (u16, String);
    /// Each initiate call as received: its idempotency key and JSON body.
    type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

    #[derive(Clone, Default)]
    struct Fake {
        scripts: Arc<HashMap<String, Script>>,
        seen: Seen,
    }

    fn transfer(reference: &str, leg: &str, status: &str, reason: Option<&str>) -> String {
        json!({"reference": reference, "payment_id": "pay_1", "leg": leg, "amount": 100,
               "currency": "USDC", "status": status, "failure_reason": reason})
        .to_string()
    }

    async fn initiate(
        State(f): State<Fake>,
        Path(case): Path<String>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> (StatusCode, String) {
        let key = headers
            .get(IDEMPOTENCY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        f.seen.lock().unwrap().push((key, body));
        answer(&f, &case).await
    }

    async fn status(
        State(f): State<Fake>,
        Path((case, _r)): Path<(String, String)>,
    ) -> (StatusCode, String) {
        answer(&f, &case).await
    }

    async fn answer(f: &Fake, case: &str) -> (StatusCode, String) {
        if case == "hang" {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let (code, body) = f.scripts.get(case).cloned().unwrap_or((404, String::new()));
        (StatusCode::from_u16(code).unwrap(), body)
    }

    /// Serves the fake on port 0; returns its base address.
    async fn serve(scripts: Vec<(&str, u16, String)>) -> (String, Fake) {
        let fake = Fake {
            scripts: Arc::new(
                scripts
                    .into_iter()
                    .map(|(c, s, b)| (c.to_owned(), (s, b)))
                    .collect(),
            ),
            seen: Arc::default(),
        };
        let app = Router::new()
            .route("/{case}/transfers", post(initiate))
            .route("/{case}/transfers/{reference}", get(status))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), fake)
    }

    /// What the tests' transfers were sent with (the fake answers 100 USDC).
    fn sent(reference: &str) -> Sent {
        Sent {
            reference: reference.into(),
            amount: 100,
            currency: "USDC".into(),
        }
    }

    fn leg(leg: &str) -> LegRequest {
        LegRequest {
            payment_id: "pay_1".into(),
            idempotency_key: format!("pay_1:{leg}"),
            amount: 100,
            currency: "USDC".into(),
            account: "user123".into(),
        }
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        Ok(&'static str),
        Refused,
        Transient,
    }

    fn kind<T>(r: &Result<T, ProviderError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(ProviderError::Refused(_)) => "refused",
            Err(ProviderError::Transient(_)) => "transient",
            Err(ProviderError::NotSent(_)) => "not sent",
        }
    }

    #[tokio::test]
    async fn initiate_answers_map_to_references_refusals_and_transient_errors() {
        let refusal = json!({"error": "ACCOUNT_BLOCKED", "message": "the account is frozen"});
        let cases: Vec<(&str, u16, String, Want)> = vec![
            (
                "created",
                201,
                transfer("ref_1", "onramp", "PENDING", None),
                Want::Ok("ref_1"),
            ),
            (
                "replayed",
                200,
                transfer("ref_1", "onramp", "COMPLETED", None),
                Want::Ok("ref_1"),
            ),
            ("refused", 422, refusal.to_string(), Want::Refused),
            ("bad_request", 400, refusal.to_string(), Want::Refused),
            ("bare_404", 404, "Not Found".into(), Want::Transient),
            ("in_flight", 409, refusal.to_string(), Want::Transient),
            ("rate_limited", 429, refusal.to_string(), Want::Transient),
            ("server_error", 500, refusal.to_string(), Want::Transient),
            ("unavailable", 503, String::new(), Want::Transient),
            ("redirect", 307, String::new(), Want::Transient),
            ("garbled", 201, "{not json".into(), Want::Transient),
            (
                "other_leg",
                201,
                transfer("ref_1", "offramp", "PENDING", None),
                Want::Transient,
            ),
            (
                "empty_ref",
                201,
                transfer("", "onramp", "PENDING", None),
                Want::Transient,
            ),
            (
                "other_amount",
                201,
                json!({"reference": "ref_1", "payment_id": "pay_1", "leg": "onramp",
                       "amount": 101, "currency": "USDC", "status": "PENDING"})
                .to_string(),
                Want::Transient,
            ),
            (
                "other_currency",
                201,
                json!({"reference": "ref_1", "payment_id": "pay_1", "leg": "onramp",
                       "amount": 100, "currency": "USDT", "status": "PENDING"})
                .to_string(),
                Want::Transient,
            ),
        ];
        let (base, fake) = serve(
            cases
                .iter()
                .map(|(c, s, b, _)| (*c, *s, b.clone()))
                .collect(),
        )
        .await;
        for (case, _, _, want) in &cases {
            let onramp = HttpOnramp::new(
                ONRAMP_NAME,
                &format!("{base}/{case}/"),
                Duration::from_secs(2),
            )
            .unwrap();
            let got = onramp.buy(&leg("onramp")).await;
            match want {
                Want::Ok(r) => assert_eq!(got, Ok((*r).to_owned()), "{case}"),
                Want::Refused => assert_eq!(kind(&got), "refused", "{case}: {got:?}"),
                Want::Transient => assert_eq!(kind(&got), "transient", "{case}: {got:?}"),
            }
        }
        // The refusal carries the provider's code and message for the payment's failure.
        let onramp = HttpOnramp::new(
            ONRAMP_NAME,
            &format!("{base}/refused"),
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(
            onramp.buy(&leg("onramp")).await,
            Err(ProviderError::Refused(
                "http-onramp: ACCOUNT_BLOCKED: the account is frozen".into()
            ))
        );
        // Every call carried the idempotency key and the leg in the body.
        let seen = fake.seen.lock().unwrap();
        assert!(
            seen.iter()
                .all(|(k, b)| k.as_deref() == Some("pay_1:onramp") && b["leg"] == "onramp")
        );
        assert_eq!(seen[0].1["amount"], 100);
        assert_eq!(seen[0].1["account"], "user123");
    }

    #[tokio::test]
    async fn reversals_and_payouts_name_their_leg() {
        let (base, fake) = serve(vec![
            ("rev", 201, transfer("ref_r", "reversal", "PENDING", None)),
            ("off", 201, transfer("ref_o", "offramp", "PENDING", None)),
        ])
        .await;
        let t = Duration::from_secs(2);
        let onramp = HttpOnramp::new(ONRAMP_NAME, &format!("{base}/rev"), t).unwrap();
        let offramp = HttpOfframp::new("acme-payouts", &format!("{base}/off"), t).unwrap();
        assert_eq!(onramp.reverse(&leg("reversal")).await, Ok("ref_r".into()));
        assert_eq!(offramp.pay_out(&leg("offramp")).await, Ok("ref_o".into()));
        assert_eq!(Offramp::name(&offramp), "acme-payouts");
        let seen = fake.seen.lock().unwrap();
        assert_eq!(seen[0].0.as_deref(), Some("pay_1:reversal"));
        assert_eq!(seen[1].1["leg"], "offramp");
    }

    #[tokio::test]
    async fn status_answers_map_to_transfer_status_or_transient() {
        let cases: Vec<(&str, u16, String, Result<TransferStatus, ()>)> = vec![
            (
                "pending",
                200,
                transfer("ref_1", "onramp", "PENDING", None),
                Ok(TransferStatus::Pending),
            ),
            (
                "done",
                200,
                transfer("ref_1", "onramp", "COMPLETED", None),
                Ok(TransferStatus::Completed),
            ),
            (
                "failed",
                200,
                transfer("ref_1", "onramp", "FAILED", Some("card declined")),
                Ok(TransferStatus::Failed("card declined".into())),
            ),
            (
                "failed_no_reason",
                200,
                transfer("ref_1", "onramp", "FAILED", None),
                Ok(TransferStatus::Failed("the provider gave no reason".into())),
            ),
            (
                "unknown_status",
                200,
                transfer("ref_1", "onramp", "LOST", None),
                Err(()),
            ),
            (
                "other_ref",
                200,
                transfer("ref_2", "onramp", "COMPLETED", None),
                Err(()),
            ),
            (
                "not_found",
                404,
                json!({"error": "NOT_FOUND", "message": "no"}).to_string(),
                Err(()),
            ),
            ("server_error", 502, String::new(), Err(())),
            (
                "other_amount",
                200,
                json!({"reference": "ref_1", "payment_id": "pay_1", "leg": "onramp",
                       "amount": 99, "currency": "USDC", "status": "COMPLETED"})
                .to_string(),
                Err(()),
            ),
            (
                "other_currency",
                200,
                json!({"reference": "ref_1", "payment_id": "pay_1", "leg": "onramp",
                       "amount": 100, "currency": "EUR", "status": "COMPLETED"})
                .to_string(),
                Err(()),
            ),
        ];
        let (base, _) = serve(
            cases
                .iter()
                .map(|(c, s, b, _)| (*c, *s, b.clone()))
                .collect(),
        )
        .await;
        for (case, _, _, want) in cases {
            let offramp = HttpOfframp::new(
                OFFRAMP_NAME,
                &format!("{base}/{case}"),
                Duration::from_secs(2),
            )
            .unwrap();
            let got = offramp.status(&sent("ref_1")).await;
            match want {
                Ok(s) => assert_eq!(got, Ok(s), "{case}"),
                Err(()) => assert_eq!(kind(&got), "transient", "{case}: {got:?}"),
            }
        }
    }

    #[tokio::test]
    async fn timeouts_are_transient_and_refused_connections_not_sent() {
        let (base, _) = serve(vec![]).await;
        let slow = HttpOnramp::new(
            ONRAMP_NAME,
            &format!("{base}/hang"),
            Duration::from_millis(200),
        )
        .unwrap();
        let got = slow.buy(&leg("onramp")).await;
        assert_eq!(kind(&got), "transient", "{got:?}");
        assert_eq!(kind(&slow.status(&sent("ref_1")).await), "transient");

        // A port nobody listens on: bind one, then let it go.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let gone = HttpOnramp::new(
            ONRAMP_NAME,
            &format!("http://{addr}/onramp"),
            Duration::from_secs(2),
        )
        .unwrap();
        // Nothing reached the provider: the worker may hand its claim back.
        let got = gone.buy(&leg("onramp")).await;
        assert_eq!(kind(&got), "not sent", "{got:?}");
    }

    #[test]
    fn a_statement_is_read_or_refused_or_transient() {
        let body = br#"{"data":[{"reference":"r","payment_id":"pay_1","leg":"offramp","amount":5,"currency":"EUR","status":"COMPLETED"},
                                {"reference":"x","payment_id":"pay_1","leg":"sideways","amount":5,"currency":"EUR","status":"COMPLETED"}]}"#;
        let lines = statement_outcome("p", StatusCode::OK, body).unwrap();
        assert_eq!(lines.len(), 1, "a leg it does not know is not a line");
        assert_eq!(
            (lines[0].amount, lines[0].leg.to_string()),
            (5, "offramp".into())
        );
        for no in [
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::NOT_IMPLEMENTED,
        ] {
            assert!(
                matches!(
                    statement_outcome("p", no, b""),
                    Err(ProviderError::Refused(_))
                ),
                "{no}"
            );
        }
        assert!(matches!(
            statement_outcome("p", StatusCode::SERVICE_UNAVAILABLE, b""),
            Err(ProviderError::Transient(_))
        ));
        assert!(matches!(
            statement_outcome("p", StatusCode::OK, b"{"),
            Err(ProviderError::Transient(_))
        ));
    }

    #[test]
    fn base_urls_must_be_plain_http_or_https() {
        assert!(parse_base_url("http://127.0.0.1:9000/onramp").is_ok());
        assert!(parse_base_url("https://provider.example/api/v2/").is_ok());
        for bad in [
            "",
            "127.0.0.1:9000",
            "ftp://x/onramp",
            "http://x/onramp?a=1",
            "mailto:a@b",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_are_appended_and_references_escaped() {
        let e = Endpoint::new("p", "http://h:1/api/onramp/", Duration::from_secs(1)).unwrap();
        assert_eq!(
            e.url(&["transfers"]).as_str(),
            "http://h:1/api/onramp/transfers"
        );
        assert_eq!(
            e.url(&["transfers", "a/b c"]).as_str(),
            "http://h:1/api/onramp/transfers/a%2Fb%20c"
        );
    }
}
