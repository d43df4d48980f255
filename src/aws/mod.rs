//! Serverless on AWS (cargo feature `aws`): the same node as `serve`, cut into three Lambda
//! functions — the HTTP API behind API Gateway, a worker started by SQS, a sweeper started by
//! an EventBridge schedule — with SQS carrying wake-ups and PostgreSQL staying the truth.
//!
//! - [`sqs`]: the queue of wake-ups. A committed unit that schedules a job sends a message
//!   delayed until the job is due ([`crate::store::WakeupSink`]); a wake-up names an
//!   instant, not a job, so a lost or repeated one only delays or repeats a claim of due jobs.
//! - [`lambda`]: the three handlers, as plain methods (the tests call them in-process with
//!   real event payloads) and as `corridor lambda api|worker|sweeper`, the functions' entry
//!   point.
//! - [`secrets`]: the settings that are secrets (database URL, admin key, webhook secrets),
//!   read from Secrets Manager at a cold start, never from plain variables.
//!
//! `deploy/aws/` holds the Terraform that wires them; `ARCHITECTURE.md` draws it.

pub mod lambda;
pub mod secrets;
pub mod sqs;

/// The AWS SDK's shared configuration: region, credentials and endpoints from the
/// environment as every AWS tool reads them (`AWS_REGION`, the Lambda role's credentials,
/// `AWS_ENDPOINT_URL`).
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_loader().load().await
}

/// The SDK's configuration loader over rustls with ring, the TLS the rest of Corridor uses
/// (the offline tests set region, credentials and a `moto` endpoint on it).
pub fn sdk_loader() -> aws_config::ConfigLoader {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    // Bounded: a wake-up is sent after its unit committed and before the caller hears, so an
    // unreachable SQS must cost a request seconds, not the SDK's default retries.
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(1))
                .operation_attempt_timeout(std::time::Duration::from_secs(2))
                .operation_timeout(std::time::Duration::from_secs(4))
                .build(),
        )
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
}

/// An SDK error with its whole chain of causes, for logs and job errors.
fn sdk_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
