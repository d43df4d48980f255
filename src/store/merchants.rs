//! Merchants and their API keys (stored as SHA-256 hashes, looked up by index).

use super::{Conn, Store, StoreResult, col, query};

/// A merchant as stored.
#[derive(Debug, Clone)]
pub struct Merchant {
    /// `mer_<uuid>`.
    pub merchant_id: String,
    /// Display name.
    pub name: String,
    /// Creation instant (Unix ms).
    pub created_at: i64,
}

/// Creates a merchant with one API key (given as its hash and a short display prefix).
pub(super) async fn create(
    conn: &mut Conn,
    merchant: &Merchant,
    key_hash: &str,
    key_prefix: &str,
) -> StoreResult<()> {
    query("INSERT INTO merchants (merchant_id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&merchant.merchant_id)
        .bind(&merchant.name)
        .bind(merchant.created_at)
        .execute(&mut *conn)
        .await?;
    add_key(
        conn,
        &merchant.merchant_id,
        key_hash,
        key_prefix,
        merchant.created_at,
    )
    .await
}

/// Adds an API key to a merchant.
pub(super) async fn add_key(
    conn: &mut Conn,
    merchant_id: &str,
    key_hash: &str,
    key_prefix: &str,
    now: i64,
) -> StoreResult<()> {
    query(
        "INSERT INTO api_keys (key_hash, merchant_id, prefix, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(key_hash)
    .bind(merchant_id)
    .bind(key_prefix)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces all of a merchant's keys with one new key. Returns false for an unknown merchant.
pub(super) async fn rotate_key(
    conn: &mut Conn,
    merchant_id: &str,
    key_hash: &str,
    key_prefix: &str,
    now: i64,
) -> StoreResult<bool> {
    if find_in(conn, merchant_id).await?.is_none() {
        return Ok(false);
    }
    query("DELETE FROM api_keys WHERE merchant_id = $1")
        .bind(merchant_id)
        .execute(&mut *conn)
        .await?;
    add_key(conn, merchant_id, key_hash, key_prefix, now).await?;
    Ok(true)
}

/// The merchant owning the key with this hash.
pub async fn by_key_hash(store: &Store, key_hash: &str) -> StoreResult<Option<String>> {
    if let Some(merchant_id) = store.caches.keys.get(&key_hash.to_owned()) {
        return Ok(Some(merchant_id));
    }
    let generation = store.caches.keys.generation();
    let mut conn = store.reader().await?;
    let row = query("SELECT merchant_id FROM api_keys WHERE key_hash = $1")
        .bind(key_hash)
        .fetch_optional(&mut *conn)
        .await?;
    let merchant_id: Option<String> = row.map(|r| col(&r, "merchant_id")).transpose()?;
    if let Some(m) = &merchant_id {
        store
            .caches
            .keys
            .put(generation, key_hash.to_owned(), m.clone());
    }
    Ok(merchant_id)
}

/// One merchant by id.
pub async fn find(store: &Store, merchant_id: &str) -> StoreResult<Option<Merchant>> {
    find_in(&mut *store.reader().await?, merchant_id).await
}

async fn find_in(conn: &mut Conn, merchant_id: &str) -> StoreResult<Option<Merchant>> {
    let row = query("SELECT merchant_id, name, created_at FROM merchants WHERE merchant_id = $1")
        .bind(merchant_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| {
        Ok(Merchant {
            merchant_id: col(&r, "merchant_id")?,
            name: col(&r, "name")?,
            created_at: col(&r, "created_at")?,
        })
    })
    .transpose()
}
