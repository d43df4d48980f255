//! Operator data: rate pins, alerts, the admin audit log and dashboard sessions.

use rust_decimal::Decimal;

use super::{Conn, Store, StoreResult, col, query};
use crate::domain::{Currency, Timestamp};

/// A pinned customer rate for one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePin {
    /// Source currency.
    pub from: Currency,
    /// Payout currency.
    pub to: Currency,
    /// The exact customer rate new quotes get.
    pub rate: Decimal,
    /// When pinned.
    pub pinned_at: Timestamp,
}

fn pin_from_row(r: &super::Row) -> StoreResult<RatePin> {
    Ok(RatePin {
        from: super::parse_col(r, "from_currency")?,
        to: super::parse_col(r, "to_currency")?,
        rate: super::parse_col(r, "rate")?,
        pinned_at: Timestamp(col(r, "pinned_at")?),
    })
}

/// Sets (or replaces) a pin.
pub(super) async fn pin_rate(conn: &mut Conn, pin: &RatePin) -> StoreResult<()> {
    query(
        "INSERT INTO rate_pins (from_currency, to_currency, rate, pinned_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (from_currency, to_currency) DO UPDATE SET rate = excluded.rate, pinned_at = excluded.pinned_at",
    )
    .bind(pin.from.code())
    .bind(pin.to.code())
    .bind(pin.rate.normalize().to_string())
    .bind(pin.pinned_at.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes a pin; false when there was none.
pub(super) async fn unpin_rate(conn: &mut Conn, from: Currency, to: Currency) -> StoreResult<bool> {
    let r = query("DELETE FROM rate_pins WHERE from_currency = $1 AND to_currency = $2")
        .bind(from.code())
        .bind(to.code())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The pin for one direction, if any.
pub async fn rate_pin(store: &Store, from: Currency, to: Currency) -> StoreResult<Option<RatePin>> {
    if let Some(pin) = store.caches.pins.get(&(from, to)) {
        return Ok(pin);
    }
    let generation = store.caches.pins.generation();
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query(
        "SELECT from_currency, to_currency, rate, pinned_at FROM rate_pins WHERE from_currency = $1 AND to_currency = $2",
    )
    .bind(from.code())
    .bind(to.code())
    .fetch_optional(&mut *conn)
    .await?;
    let pin = row.map(|r| pin_from_row(&r)).transpose()?;
    store.caches.pins.put(generation, (from, to), pin.clone());
    Ok(pin)
}

/// Every pin.
pub async fn rate_pins(store: &Store) -> StoreResult<Vec<RatePin>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query("SELECT from_currency, to_currency, rate, pinned_at FROM rate_pins ORDER BY from_currency, to_currency")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(pin_from_row).collect()
}

/// Alert kinds.
pub const STUCK_PAYMENT: &str = "STUCK_PAYMENT";
/// An endpoint whose recent deliveries all failed.
pub const WEBHOOK_ENDPOINT_FAILING: &str = "WEBHOOK_ENDPOINT_FAILING";
/// A dead-lettered job.
pub const DEAD_JOB: &str = "DEAD_JOB";
/// A reconciliation run that found the ledger and a provider disagreeing.
pub const RECONCILIATION_MISMATCH: &str = "RECONCILIATION_MISMATCH";

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// `alert_<uuid>`.
    pub alert_id: String,
    /// One of the kind constants.
    pub kind: String,
    /// The payment, endpoint or job id it is about.
    pub subject: String,
    /// Payment concerned.
    pub payment_id: Option<String>,
    /// Endpoint concerned.
    pub endpoint_id: Option<String>,
    /// Job concerned.
    pub job_id: Option<String>,
    /// What is wrong.
    pub message: String,
    /// When the condition began.
    pub since: Timestamp,
}

fn alert_from_row(r: &super::Row) -> StoreResult<Alert> {
    Ok(Alert {
        alert_id: col(r, "alert_id")?,
        kind: col(r, "kind")?,
        subject: col(r, "subject")?,
        payment_id: col(r, "payment_id")?,
        endpoint_id: col(r, "endpoint_id")?,
        job_id: col(r, "job_id")?,
        message: col(r, "message")?,
        since: Timestamp(col(r, "since")?),
    })
}

const ALERT_COLUMNS: &str =
    "alert_id, kind, subject, payment_id, endpoint_id, job_id, message, since";

/// Open alerts, oldest condition first.
pub async fn open_alerts(store: &Store) -> StoreResult<Vec<Alert>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(super::dynamic(format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE cleared_at IS NULL ORDER BY since, alert_id"
    )))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(alert_from_row).collect()
}

/// Stores a newly raised alert (the caller knows none is open for its kind and subject).
pub(super) async fn insert_alert(conn: &mut Conn, a: &Alert, now: Timestamp) -> StoreResult<()> {
    query(super::dynamic(format!(
        "INSERT INTO alerts ({ALERT_COLUMNS}, raised_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )))
    .bind(&a.alert_id)
    .bind(&a.kind)
    .bind(&a.subject)
    .bind(a.payment_id.clone())
    .bind(a.endpoint_id.clone())
    .bind(a.job_id.clone())
    .bind(&a.message)
    .bind(a.since.millis())
    .bind(now.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks an alert cleared: its condition is gone.
pub(super) async fn clear_alert(
    conn: &mut Conn,
    alert_id: &str,
    now: Timestamp,
) -> StoreResult<()> {
    query("UPDATE alerts SET cleared_at = $1 WHERE alert_id = $2")
        .bind(now.millis())
        .bind(alert_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Payments in a non-terminal state since before `cutoff`: `(payment_id, state, since)`.
pub async fn stuck_payments(
    store: &Store,
    cutoff: Timestamp,
    limit: i64,
) -> StoreResult<Vec<(String, String, Timestamp)>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(
        "SELECT payment_id, state, state_since FROM payments \
         WHERE state IN ('PENDING', 'ONRAMP_PENDING', 'ONRAMP_COMPLETE', 'OFFRAMP_PENDING', 'REFUND_PENDING') \
         AND state_since < $1 ORDER BY state_since LIMIT $2",
    )
    .bind(cutoff.millis())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                col(r, "payment_id")?,
                col(r, "state")?,
                Timestamp(col(r, "state_since")?),
            ))
        })
        .collect()
}

/// Endpoints (enabled) whose last `n` delivery attempts all failed: `(endpoint_id, first failure)`.
pub async fn failing_endpoints(store: &Store, n: i64) -> StoreResult<Vec<(String, Timestamp)>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let endpoints = query("SELECT endpoint_id FROM webhook_endpoints WHERE disabled_at IS NULL")
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::new();
    for e in &endpoints {
        let id: String = col(e, "endpoint_id")?;
        let rows = query(
            "SELECT status_code, created_at FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY created_at DESC LIMIT $2",
        )
        .bind(&id)
        .bind(n)
        .fetch_all(&mut *conn)
        .await?;
        if i64::try_from(rows.len()).unwrap_or(0) < n {
            continue;
        }
        let mut all_failed = true;
        let mut first = i64::MAX;
        for r in &rows {
            let code: Option<i64> = col(r, "status_code")?;
            if code.is_some_and(|c| (200..300).contains(&c)) {
                all_failed = false;
                break;
            }
            first = first.min(col::<i64>(r, "created_at")?);
        }
        if all_failed {
            out.push((id, Timestamp(first)));
        }
    }
    Ok(out)
}

/// Records an operator action.
pub(super) async fn audit(
    conn: &mut Conn,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
    at: Timestamp,
) -> StoreResult<()> {
    query("INSERT INTO admin_audit (audit_id, at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(format!("aud_{}", crate::idgen::v4()))
        .bind(at.millis())
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One audit entry.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who (`admin-key`, `dashboard`).
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Details.
    pub detail: String,
}

/// Recent audit entries, newest first.
pub async fn recent_audit(store: &Store, limit: i64) -> StoreResult<Vec<AuditEntry>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(
        "SELECT at, actor, action, target, detail FROM admin_audit ORDER BY at DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                at: Timestamp(col(r, "at")?),
                actor: col(r, "actor")?,
                action: col(r, "action")?,
                target: col(r, "target")?,
                detail: col(r, "detail")?,
            })
        })
        .collect()
}

/// Stores a dashboard session (by the hash of its token).
pub(super) async fn create_session(
    conn: &mut Conn,
    token_hash: &str,
    now: Timestamp,
    expires_at: Timestamp,
) -> StoreResult<()> {
    query(
        "INSERT INTO dashboard_sessions (session_hash, created_at, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash)
    .bind(now.millis())
    .bind(expires_at.millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether a session is valid at `now`.
pub async fn session_valid(store: &Store, token_hash: &str, now: Timestamp) -> StoreResult<bool> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query("SELECT expires_at FROM dashboard_sessions WHERE session_hash = $1")
        .bind(token_hash)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => col::<i64>(&r, "expires_at")? > now.millis(),
        None => false,
    })
}

/// Ends a session.
pub(super) async fn delete_session(conn: &mut Conn, token_hash: &str) -> StoreResult<()> {
    query("DELETE FROM dashboard_sessions WHERE session_hash = $1")
        .bind(token_hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Removes expired sessions.
pub(super) async fn purge_sessions(conn: &mut Conn, now: Timestamp) -> StoreResult<u64> {
    let r = query("DELETE FROM dashboard_sessions WHERE expires_at < $1")
        .bind(now.millis())
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

/// The first `limit` open alerts, oldest condition first, and how many are open in all (the
/// dashboard shows a bounded list however many payments are stuck).
pub async fn open_alerts_page(store: &Store, limit: i64) -> StoreResult<(Vec<Alert>, i64)> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let rows = query(super::dynamic(format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE cleared_at IS NULL ORDER BY since, alert_id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let total = query("SELECT COUNT(*) AS n FROM alerts WHERE cleared_at IS NULL")
        .fetch_one(&mut *conn)
        .await?;
    Ok((
        rows.iter()
            .map(alert_from_row)
            .collect::<StoreResult<_>>()?,
        col(&total, "n")?,
    ))
}
