//! The work Corridor queues: one enum of job kinds with typed payloads.
//!
//! A job row stores [`Task::kind`] and [`Task::payload`]; [`Task::from_parts`] turns them
//! back into the enum, so the engine dispatches with one exhaustive `match` and no handler
//! re-parses JSON by hand. Adding a kind is a new variant here and an arm in the engine.

use serde::{Deserialize, Serialize};

use super::PaymentState;

/// One kind of queued work, with what it needs to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "kind", content = "payload")]
pub enum Task {
    /// Advance one payment by one step; the job row names the payment.
    #[serde(rename = "payment.step")]
    #[strum(serialize = "payment.step")]
    PaymentStep {
        /// The state the step expects the payment in (a moved-on payment makes it a no-op).
        state: PaymentState,
        /// Settlement polls made so far in this state (for backoff).
        #[serde(default)]
        polls: u32,
    },
    /// Send one event to one merchant endpoint.
    #[serde(rename = "webhook.deliver")]
    #[strum(serialize = "webhook.deliver")]
    DeliverWebhook {
        /// Event to send.
        event_id: String,
        /// Endpoint to send it to.
        endpoint_id: String,
        /// Delivery attempts made so far.
        #[serde(default)]
        attempt: u32,
    },
    /// Recurring housekeeping: purge expired quotes, idempotency keys, webhook ids, sessions.
    #[serde(rename = "janitor")]
    #[strum(serialize = "janitor")]
    Housekeeping {},
    /// Recurring alert sweep: raise and clear operator alerts.
    #[serde(rename = "alerts.sweep")]
    #[strum(serialize = "alerts.sweep")]
    SweepAlerts {},
    /// Perform one reconciliation run (created with it).
    #[serde(rename = "reconciliation.run")]
    #[strum(serialize = "reconciliation.run")]
    Reconcile {
        /// The run.
        reconciliation_id: String,
    },
    /// Recurring: start a reconciliation of the period since the last one.
    #[serde(rename = "reconciliation.schedule")]
    #[strum(serialize = "reconciliation.schedule")]
    ScheduleReconciliation {},
    /// A wake-up message an outside queue (SQS, serverless) gave up on after `receives`
    /// deliveries. Recorded dead, so the dead-job alert and the operator's list show it; the
    /// work it would have woken is in the database and runs anyway. Redriven, it just
    /// completes.
    #[serde(rename = "wakeup.dead_letter")]
    #[strum(serialize = "wakeup.dead_letter")]
    DeadLetter {
        /// The queue's id of the message.
        message_id: String,
        /// How often the queue delivered it before giving up.
        receives: u32,
        /// Its body (at most 1,000 characters).
        body: String,
    },
}

/// The stored kind or payload does not describe a [`Task`].
#[derive(Debug, thiserror::Error)]
#[error("bad job `{kind}`: {source}")]
pub struct BadTask {
    /// The stored kind.
    pub kind: String,
    /// What did not parse.
    pub source: serde_json::Error,
}

impl Task {
    /// The stored kind of [`Task::DeliverWebhook`] (the lane the engine runs apart).
    pub const DELIVERY_KIND: &'static str = "webhook.deliver";
    /// The stored kind of [`Task::PaymentStep`].
    pub const STEP_KIND: &'static str = "payment.step";

    /// The stored kind (`payment.step`): the serde tag, which the round-trip test holds
    /// equal to this name.
    pub fn kind(&self) -> &'static str {
        self.into()
    }

    /// The stored payload: the variant's fields as a JSON object.
    pub fn payload(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut m)) => m
                .remove("payload")
                .unwrap_or_else(|| serde_json::json!({}))
                .to_string(),
            _ => "{}".to_owned(),
        }
    }

    /// The task a stored `(kind, payload)` describes.
    pub fn from_parts(kind: &str, payload: &str) -> Result<Task, BadTask> {
        let bad = |source| BadTask {
            kind: kind.to_owned(),
            source,
        };
        let payload: serde_json::Value = serde_json::from_str(payload).map_err(bad)?;
        serde_json::from_value(serde_json::json!({ "kind": kind, "payload": payload })).map_err(bad)
    }

    /// Whether the task runs on a schedule of its own (sweep, housekeeping, the recurring
    /// reconciliation) rather than because something happened: a serverless deployment runs
    /// these from its scheduled sweeper and sends no wake-up for them, so an idle deployment
    /// invokes nothing but the sweeper.
    pub fn is_recurring(&self) -> bool {
        matches!(
            self,
            Task::Housekeeping {} | Task::SweepAlerts {} | Task::ScheduleReconciliation {}
        )
    }

    /// A step job for a payment expected in `state`, with no polls made yet.
    pub fn step(state: PaymentState) -> Task {
        Task::PaymentStep { state, polls: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivery_kind_constant_is_the_stored_kind() {
        let t = Task::DeliverWebhook {
            event_id: "evt".into(),
            endpoint_id: "we".into(),
            attempt: 0,
        };
        assert_eq!(t.kind(), Task::DELIVERY_KIND);
        let step = Task::PaymentStep {
            state: crate::domain::PaymentState::Pending,
            polls: 0,
        };
        assert_eq!(step.kind(), Task::STEP_KIND);
    }

    #[test]
    fn every_task_round_trips_through_its_stored_form() {
        let tasks = [
            Task::PaymentStep {
                state: PaymentState::OfframpPending,
                polls: 3,
            },
            Task::DeliverWebhook {
                event_id: "evt_1".into(),
                endpoint_id: "we_1".into(),
                attempt: 2,
            },
            Task::Housekeeping {},
            Task::SweepAlerts {},
            Task::Reconcile {
                reconciliation_id: "recon_1".into(),
            },
            Task::ScheduleReconciliation {},
            Task::DeadLetter {
                message_id: "1b0e7c1e-0000-4000-8000-000000000000".into(),
                receives: 5,
                body: "{}".into(),
            },
        ];
        for t in tasks {
            let back = Task::from_parts(t.kind(), &t.payload()).unwrap();
            assert_eq!(back, t);
        }
    }

    /// Rows written by earlier versions keep running: the stored shapes did not change.
    #[test]
    fn rows_written_before_the_enum_still_parse() {
        assert_eq!(
            Task::from_parts("payment.step", r#"{"state":"PENDING","polls":0}"#).unwrap(),
            Task::step(PaymentState::Pending)
        );
        assert_eq!(
            Task::from_parts("payment.step", r#"{"state":"ONRAMP_PENDING"}"#).unwrap(),
            Task::step(PaymentState::OnrampPending)
        );
        assert_eq!(
            Task::from_parts("janitor", "{}").unwrap(),
            Task::Housekeeping {}
        );
        assert!(Task::from_parts("nope", "{}").is_err());
        assert!(Task::from_parts("payment.step", r#"{"state":"NOPE"}"#).is_err());
    }
}
