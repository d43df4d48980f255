//! Process-wide settings rows: the admin key hash, bootstrap markers.

use super::col;

use super::{Conn, Store, StoreResult, query};

/// Inserts `key = value` unless the key exists. Returns whether this call inserted it, so
/// exactly one of several starting processes wins a bootstrap step.
pub(super) async fn insert_if_absent(conn: &mut Conn, key: &str, value: &str) -> StoreResult<bool> {
    let r = query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The value of `key`, if set.
pub async fn get(store: &Store, key: &str) -> StoreResult<Option<String>> {
    let mut conn = store.reader().await?;
    let conn = &mut *conn;
    let row = query("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| col(&r, "value")).transpose()
}
