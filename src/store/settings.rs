//! Process-wide settings rows: the admin key hash, bootstrap markers.

use sqlx::Row;

use super::{Conn, StoreResult};

/// Inserts `key = value` unless the key exists. Returns whether this call inserted it, so
/// exactly one of several starting processes wins a bootstrap step.
pub async fn insert_if_absent(conn: &mut Conn, key: &str, value: &str) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Sets `key = value`, replacing any value.
pub async fn put(conn: &mut Conn, key: &str, value: &str) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The value of `key`, if set.
pub async fn get(conn: &mut Conn, key: &str) -> StoreResult<Option<String>> {
    let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.get::<String, _>("value")))
}
