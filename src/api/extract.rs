//! Request extractors that speak the error format: JSON bodies (content type, size limit,
//! unknown fields refused, the offending field named) and query strings.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::{ApiError, Code};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body kept as raw bytes (for idempotency hashing) after its content type
/// and size were checked.
pub struct JsonBytes(pub Bytes);

pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

impl<S: Send + Sync> FromRequest<S> for JsonBytes
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "request bodies must be sent with Content-Type: application/json",
            ));
        }
        // The body is read as it arrives; a compressed one would be parsed as garbage.
        if let Some(coding) = req.headers().get(axum::http::header::CONTENT_ENCODING) {
            let coding = coding.to_str().unwrap_or("?").trim();
            if !coding.eq_ignore_ascii_case("identity") {
                return Err(ApiError::new(
                    Code::UnsupportedMediaType,
                    format!(
                        "Content-Encoding `{coding}` is not supported: send the body uncompressed"
                    ),
                ));
            }
        }
        // A body that stops arriving is the client's fault (408), told apart from the whole
        // request running out of time (503) by giving the body half of that time.
        let patience = AppState::from_ref(state).request_timeout / 2;
        let read = tokio::time::timeout(patience, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                ApiError::new(
                    Code::RequestTimeout,
                    "the request body did not arrive in time",
                )
            })?;
        let bytes = read.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(Code::PayloadTooLarge, "request body exceeds 64 KiB")
            } else {
                ApiError::new(Code::InvalidRequest, "could not read the request body")
            }
        })?;
        Ok(JsonBytes(bytes))
    }
}

impl JsonBytes {
    /// Parses into `T`, naming the field at fault.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.0)
    }
}

/// Parses JSON into `T`, naming the field at fault in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if super::edge::json_has_nul(bytes) {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "request body contains a NUL character (\\u0000), which no field accepts",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // serde_json appends " at line X column Y"; the field name is more useful.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(Code::InvalidRequest, "request body is not valid JSON")
        } else if path.is_empty() || path == "." {
            ApiError::new(Code::InvalidRequest, format!("invalid request body: {msg}"))
        } else {
            ApiError::invalid(&path, format!("invalid `{path}`: {msg}"))
        }
    })?;
    // Trailing bytes after the JSON value make the whole body malformed.
    de.end()
        .map_err(|_| ApiError::new(Code::InvalidRequest, "request body is not valid JSON"))?;
    Ok(value)
}

/// A JSON body parsed into `T` (deny unknown fields on `T` to refuse them).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T>
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let raw = JsonBytes::from_request(req, state).await?;
        raw.parse().map(ApiJson)
    }
}

/// A query string parsed into `T`, with errors in the API format.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(ApiQuery)
            .map_err(|e| ApiError::new(Code::InvalidRequest, format!("invalid query string: {e}")))
    }
}

/// `deserialize_with` for an optional string map that refuses a key given twice (serde's
/// maps keep the last silently; which one the client meant cannot be known).
pub fn unique_string_map<'de, D>(
    d: D,
) -> Result<Option<std::collections::BTreeMap<String, String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = std::collections::BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of string values")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = std::collections::BTreeMap::new();
            while let Some((k, v)) = m.next_entry::<String, String>()? {
                if out.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!("key `{k}` appears twice")));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    struct Optional;
    impl<'de> serde::de::Visitor<'de> for Optional {
        type Value = Option<std::collections::BTreeMap<String, String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of string values or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_map(Unique).map(Some)
        }
    }
    d.deserialize_option(Optional)
}

/// `deserialize_with` for an optional decimal that must be written as a JSON number (not a
/// string), kept exact (the number's own digits, never through a float).
pub fn json_number_decimal<'de, D>(d: D) -> Result<Option<rust_decimal::Decimal>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .to_string()
            .parse::<rust_decimal::Decimal>()
            .or_else(|_| rust_decimal::Decimal::from_scientific(&n.to_string()))
            .map(Some)
            .map_err(|_| serde::de::Error::custom("must be a decimal number within range")),
        Some(_) => Err(serde::de::Error::custom("must be a JSON number")),
    }
}

/// A `payment_id` filter must name a payment (`pay_…`): a malformed one is the client's
/// mistake (400), not an empty result.
pub fn payment_id_filter(payment_id: Option<&str>) -> Result<(), ApiError> {
    match payment_id {
        Some(p) if !crate::domain::ids::IdKind::Payment.matches(p) => Err(ApiError::invalid(
            "payment_id",
            "`payment_id` must be a payment id (pay_…)",
        )),
        _ => Ok(()),
    }
}
