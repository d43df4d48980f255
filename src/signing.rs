//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), both ways: Corridor
//! signs what it sends to merchants, and verifies what providers send to it.
//!
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key
//! is the base64-decoded part of the secret after `whsec_`. Several space-separated
//! signatures may be sent (secret rotation); one valid signature suffices.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Header carrying the message id (also the receiver's dedupe key).
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the Unix timestamp in seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying the signature(s).
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// How far a timestamp may be from now before the message counts as a replay.
pub const TOLERANCE_SECS: i64 = 300;

/// A secret that is not `whsec_<base64>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret must look like whsec_<base64>")]
pub struct BadSecret;

/// A signing key parsed from its `whsec_…` form.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>`.
    pub fn parse(s: &str) -> Result<Secret, BadSecret> {
        let b64 = s.strip_prefix("whsec_").ok_or(BadSecret)?;
        let key = STANDARD.decode(b64).map_err(|_| BadSecret)?;
        if key.len() < 16 {
            return Err(BadSecret);
        }
        Ok(Secret(key))
    }

    /// A fresh random secret in its `whsec_…` form.
    pub fn generate() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        format!("whsec_{}", STANDARD.encode(key))
    }

    /// The `v1,<base64>` signature of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.mac(id, timestamp, body).finalize().into_bytes())
        )
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// Why a signed message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent or malformed.
    #[error("missing or malformed webhook headers")]
    MissingHeaders,
    /// The timestamp is more than five minutes from now (a replay, or a broken clock).
    #[error("webhook timestamp outside the tolerance")]
    Stale,
    /// No signature matches.
    #[error("no valid webhook signature")]
    BadSignature,
}

/// Verifies a message against `secret`; `now` is Unix seconds. Constant-time comparison.
pub fn verify(
    secret: &Secret,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let (Some(id), Some(ts), Some(sigs)) = (id, timestamp, signatures) else {
        return Err(VerifyError::MissingHeaders);
    };
    if id.is_empty() || id.len() > 256 {
        return Err(VerifyError::MissingHeaders);
    }
    let ts: i64 = ts.trim().parse().map_err(|_| VerifyError::MissingHeaders)?;
    // Checked: a timestamp near i64::MIN or MAX would overflow a plain subtraction.
    if now
        .checked_sub(ts)
        .is_none_or(|d| d.unsigned_abs() > TOLERANCE_SECS.unsigned_abs())
    {
        return Err(VerifyError::Stale);
    }
    for sig in sigs.split(' ') {
        let Some(b64) = sig.strip_prefix("v1,") else {
            continue;
        };
        let Ok(raw) = STANDARD.decode(b64) else {
            continue;
        };
        if secret.mac(id, ts, body).verify_slice(&raw).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::BadSignature)
}

/// A Standard Webhooks POST of `body` under message id `id` at `now`, signed with every
/// secret in `secrets` (several during a rotation). The one way Corridor sends a signed
/// webhook: merchant deliveries, operator alerts and the standalone provider simulator.
pub fn signed_post(
    client: &reqwest::Client,
    url: &str,
    secrets: &[&Secret],
    id: &str,
    now: crate::domain::Timestamp,
    body: String,
) -> reqwest::RequestBuilder {
    let ts = now.millis().div_euclid(1000);
    let signatures: Vec<String> = secrets
        .iter()
        .map(|s| s.sign(id, ts, body.as_bytes()))
        .collect();
    client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(ID_HEADER, id)
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(SIGNATURE_HEADER, signatures.join(" "))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_from_the_standard_webhooks_spec() {
        // The example published with the specification.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(
            verify(
                &secret,
                Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
                Some("1614265330"),
                Some(&sig),
                body,
                1614265330
            )
            .is_ok()
        );
    }

    #[test]
    fn timestamps_at_the_ends_of_the_range_are_stale_not_an_overflow() {
        let secret = Secret::parse(&Secret::generate()).unwrap();
        let body = b"{}";
        for (ts, now) in [
            (i64::MIN, 1_700_000_000),
            (i64::MAX, -5),
            (i64::MIN, i64::MAX),
        ] {
            let sig = secret.sign("msg_1", ts, body);
            let got = verify(
                &secret,
                Some("msg_1"),
                Some(&ts.to_string()),
                Some(&sig),
                body,
                now,
            );
            assert!(
                matches!(got, Err(VerifyError::Stale)),
                "{ts} at {now}: {got:?}"
            );
        }
    }

    #[test]
    fn rejects_tampering_staleness_and_missing_headers() {
        let secret = Secret::parse(&Secret::generate()).unwrap();
        let sig = secret.sign("id1", 1000, b"body");
        assert_eq!(
            verify(
                &secret,
                Some("id1"),
                Some("1000"),
                Some(&sig),
                b"bodx",
                1000
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(
                &secret,
                Some("id2"),
                Some("1000"),
                Some(&sig),
                b"body",
                1000
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(
                &secret,
                Some("id1"),
                Some("1000"),
                Some(&sig),
                b"body",
                1000 + 301
            ),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(&secret, None, Some("1000"), Some(&sig), b"body", 1000),
            Err(VerifyError::MissingHeaders)
        );
        let two = format!("v1,AAAA {sig}");
        assert!(
            verify(
                &secret,
                Some("id1"),
                Some("1000"),
                Some(&two),
                b"body",
                1000
            )
            .is_ok()
        );
        assert!(Secret::parse("nope").is_err());
    }
}
