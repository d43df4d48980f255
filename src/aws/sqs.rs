//! The wake-up queue: a message per instant at which a committed unit's jobs fall due,
//! delayed until then (SQS delays at most 15 minutes; a longer wait is re-sent by the worker
//! that receives it early), and the dead-letter queue's messages for the sweeper.

use std::sync::Arc;

use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use serde::{Deserialize, Serialize};

use super::sdk_error;
use crate::domain::Timestamp;
use crate::store::WakeupSink;

/// SQS's longest delivery delay.
pub const MAX_DELAY_SECS: i64 = 900;
/// SQS's largest batch of sends.
const BATCH: usize = 10;

/// The body of a wake-up: "jobs fall due at this instant" — no job id, so a duplicate or a
/// stale message can do no more than claim whatever is due when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wakeup {
    /// The instant, in milliseconds since the epoch.
    pub due_at_ms: i64,
}

impl Wakeup {
    /// The message body.
    pub fn body(&self) -> String {
        serde_json::json!({ "due_at_ms": self.due_at_ms }).to_string()
    }

    /// A received body, or `None` for one that is not a wake-up (a poison message).
    pub fn parse(body: &str) -> Option<Wakeup> {
        serde_json::from_str(body).ok()
    }

    /// The delivery delay for this wake-up sent at `now`: whole seconds, rounded up so the
    /// message never arrives before the instant, at most [`MAX_DELAY_SECS`].
    pub fn delay_secs(&self, now: Timestamp) -> i32 {
        let ms = self.due_at_ms.saturating_sub(now.millis()).max(0);
        let secs = ((ms + 999) / 1_000).min(MAX_DELAY_SECS);
        i32::try_from(secs).unwrap_or(900)
    }
}

/// The wake-ups to send for `due` (sorted) at `now`: instants that arrive in the same second
/// share one message, carrying the latest of them (it arrives after all of them). Instants
/// past the 15-minute cap are never merged: their messages arrive early and are sent on for
/// the rest of the wait, each for its own instant.
pub fn messages(due: &[Timestamp], now: Timestamp) -> Vec<Wakeup> {
    let mut out: Vec<Wakeup> = Vec::new();
    for d in due {
        let w = Wakeup {
            due_at_ms: d.millis(),
        };
        let secs = w.delay_secs(now);
        match out.last_mut() {
            Some(last) if last.delay_secs(now) == secs && i64::from(secs) < MAX_DELAY_SECS => {
                last.due_at_ms = last.due_at_ms.max(w.due_at_ms)
            }
            Some(last) if last.due_at_ms == w.due_at_ms => {}
            _ => out.push(w),
        }
    }
    out
}

/// A message taken from a queue.
#[derive(Debug, Clone)]
pub struct Received {
    /// SQS's id of the message.
    pub message_id: String,
    /// What deletes it.
    pub receipt_handle: String,
    /// Its body.
    pub body: String,
    /// How often SQS has delivered it.
    pub receives: u32,
}

/// One SQS queue.
#[derive(Debug, Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl Queue {
    /// The queue at `url`.
    pub fn new(sdk: &aws_config::SdkConfig, url: &str) -> Queue {
        Queue {
            client: aws_sdk_sqs::Client::new(sdk),
            url: url.to_owned(),
        }
    }

    /// Sends wake-ups for `due` (sorted), sent at `now`: at most ten messages per request.
    pub async fn send(&self, due: &[Timestamp], now: Timestamp) -> Result<(), String> {
        let by_delay = messages(due, now);
        for chunk in by_delay.chunks(BATCH) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, w) in chunk.iter().enumerate() {
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(w.body())
                        .delay_seconds(w.delay_secs(now))
                        .build()
                        .map_err(|e| sdk_error(&e))?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_error(&e))?;
            if let Some(f) = out.failed().first() {
                return Err(format!(
                    "SQS refused {} of {} wake-ups: {} {}",
                    out.failed().len(),
                    chunk.len(),
                    f.code(),
                    f.message().unwrap_or("")
                ));
            }
        }
        Ok(())
    }

    /// Takes up to ten messages without waiting (they stay invisible for the queue's
    /// visibility timeout unless deleted).
    pub async fn receive(&self) -> Result<Vec<Received>, String> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sdk_error(&e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| Received {
                message_id: m.message_id().unwrap_or_default().to_owned(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                body: m.body().unwrap_or_default().to_owned(),
                receives: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            })
            .collect())
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), String> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| sdk_error(&e))?;
        Ok(())
    }
}

/// The store's [`WakeupSink`] in a serverless deployment: every committed unit's due
/// instants go to the queue. A failed send is logged and counted, never the unit's failure
/// (it is committed): the sweeper runs whatever fell due without its wake-up.
#[derive(Debug, Clone)]
pub struct SqsWakeups(pub Arc<Queue>);

impl WakeupSink for SqsWakeups {
    fn send<'a>(
        &'a self,
        due: &'a [Timestamp],
        now: Timestamp,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            match self.0.send(due, now).await {
                Ok(()) => metrics::counter!("corridor_wakeups_sent_total")
                    .increment(u64::try_from(due.len()).unwrap_or(0)),
                Err(e) => {
                    metrics::counter!("corridor_wakeups_failed_total").increment(1);
                    tracing::warn!(error = %e, "could not send a wake-up; the sweeper will run the job");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wakeup_never_arrives_early_and_waits_at_most_fifteen_minutes() {
        let now = Timestamp(1_000_000);
        let at = |ms| Wakeup { due_at_ms: ms };
        assert_eq!(at(1_000_000).delay_secs(now), 0);
        assert_eq!(at(999_000).delay_secs(now), 0);
        assert_eq!(at(1_000_001).delay_secs(now), 1);
        assert_eq!(at(1_002_000).delay_secs(now), 2);
        assert_eq!(at(1_002_001).delay_secs(now), 3);
        assert_eq!(at(1_000_000 + 3_600_000).delay_secs(now), 900);
    }

    #[test]
    fn instants_in_one_second_share_a_message_but_capped_ones_never_do() {
        let now = Timestamp(1_000_000);
        let ms = |v: &[i64]| v.iter().map(|m| Timestamp(*m)).collect::<Vec<_>>();
        let due = |w: Vec<Wakeup>| w.iter().map(|w| w.due_at_ms).collect::<Vec<_>>();
        // now, +200 ms, +800 ms → one message at +1 s carrying +800 ms; +1.5 s its own.
        assert_eq!(
            due(messages(
                &ms(&[1_000_000, 1_000_200, 1_000_800, 1_001_500]),
                now
            )),
            vec![1_000_000, 1_000_800, 1_001_500]
        );
        // +1,000 s and +2,000 s both wait the capped 900 s: each keeps its own instant.
        assert_eq!(
            due(messages(&ms(&[2_000_000, 3_000_000, 3_000_000]), now)),
            vec![2_000_000, 3_000_000]
        );
    }

    #[test]
    fn a_body_round_trips_and_anything_else_is_poison() {
        let w = Wakeup { due_at_ms: 42 };
        assert_eq!(Wakeup::parse(&w.body()), Some(w));
        assert_eq!(Wakeup::parse("{\"job\":1}"), None);
        assert_eq!(Wakeup::parse("not json"), None);
    }
}
