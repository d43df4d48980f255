//! The settings that are secrets, from AWS Secrets Manager: a function names one secret
//! (`CORRIDOR_SECRET_ID`, its ARN) whose value is a JSON object of settings, read once per
//! cold start. Only the settings below may be in it, so a typo is an error at start rather
//! than a setting silently left at its default; every other setting stays a plain variable.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use super::sdk_error;
use crate::config::Config;

/// The settings a secret may hold (named as their environment variables).
pub const KEYS: [&str; 5] = [
    "DATABASE_URL",
    "CORRIDOR_ADMIN_KEY",
    "CORRIDOR_ONRAMP_WEBHOOK_SECRET",
    "CORRIDOR_OFFRAMP_WEBHOOK_SECRET",
    "CORRIDOR_ALERT_WEBHOOK_SECRET",
];

/// Reads the secret `secret_id` (a JSON object of settings).
pub async fn load(
    sdk: &aws_config::SdkConfig,
    secret_id: &str,
) -> Result<BTreeMap<String, SecretString>, String> {
    let out = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| format!("secret {secret_id}: {}", sdk_error(&e)))?;
    let text = out
        .secret_string()
        .ok_or_else(|| format!("secret {secret_id} holds no text (a JSON object of settings)"))?;
    parse(text).map_err(|e| format!("secret {secret_id}: {e}"))
}

/// A secret's value: a JSON object of string settings, each one of [`KEYS`].
pub fn parse(text: &str) -> Result<BTreeMap<String, SecretString>, String> {
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|_| "its value must be a JSON object of settings".to_owned())?;
    let mut out = BTreeMap::new();
    for (k, v) in map {
        if !KEYS.contains(&k.as_str()) {
            return Err(format!(
                "`{k}` is not a setting a secret may hold ({})",
                KEYS.join(", ")
            ));
        }
        let serde_json::Value::String(s) = v else {
            return Err(format!("`{k}` must be a string"));
        };
        out.insert(k, SecretString::from(s));
    }
    Ok(out)
}

/// Puts the secret's settings into `cfg` (they win over the environment).
pub fn apply(cfg: &mut Config, values: BTreeMap<String, SecretString>) {
    for (k, v) in values {
        match k.as_str() {
            "DATABASE_URL" => cfg.database_url = v.expose_secret().to_owned(),
            "CORRIDOR_ADMIN_KEY" => cfg.admin_key = Some(v),
            "CORRIDOR_ONRAMP_WEBHOOK_SECRET" => cfg.onramp_webhook_secret = Some(v),
            "CORRIDOR_OFFRAMP_WEBHOOK_SECRET" => cfg.offramp_webhook_secret = Some(v),
            "CORRIDOR_ALERT_WEBHOOK_SECRET" => cfg.alert_webhook_secret = Some(v),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_string_settings_are_taken() {
        let ok = parse(
            r#"{"DATABASE_URL":"postgres://u:p@db/corridor","CORRIDOR_ADMIN_KEY":"ck_admin_x"}"#,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert!(
            parse(r#"{"DATABASE_URI":"x"}"#)
                .unwrap_err()
                .contains("DATABASE_URI")
        );
        assert!(
            parse(r#"{"DATABASE_URL":5}"#)
                .unwrap_err()
                .contains("string")
        );
        assert!(parse("[1]").is_err());
    }
}
