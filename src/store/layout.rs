//! How SQLite stores the append-mostly tables keyed by a payment: clustered on their key
//! (`WITHOUT ROWID`), a physical choice of this engine that the portable migrations cannot
//! say.
//!
//! A table with a text primary key is, on SQLite, two b-trees: the rows by an implicit rowid,
//! and the key's index pointing into them. Every insert writes both and every lookup by key
//! reads both. `payment_history` (five rows a payment) and `ledger_transfers` (eight) are
//! written on every step and read only by key, so stored on the key they cost one b-tree
//! instead of two — about a third of their bytes and a b-tree insert per row fewer.
//!
//! The rebuild runs after the migrations, once (a table already clustered is left alone):
//! the new table is created from the stored definition itself, so the schema stays written in
//! one place, and the table's indexes are recreated from theirs.

use super::{Store, StoreResult, col, dynamic, query};

/// The tables stored on their primary key.
const CLUSTERED: &[&str] = &["payment_history", "ledger_transfers"];

/// Rebuilds each of [`CLUSTERED`] that is not yet clustered, each in one transaction.
pub(super) async fn cluster(store: &Store) -> StoreResult<()> {
    for table in CLUSTERED {
        let mut tx = store.begin().await?;
        let Some(row) = query("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = $1")
            .bind(*table)
            .fetch_optional(&mut *tx)
            .await?
        else {
            continue;
        };
        let create: String = col(&row, "sql")?;
        if create.to_ascii_uppercase().contains("WITHOUT ROWID") {
            continue;
        }
        let indexes = query(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL",
        )
        .bind(*table)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| col::<String>(r, "sql"))
        .collect::<StoreResult<Vec<_>>>()?;
        let rebuilt = format!("{table}_clustered");
        // The stored definition starts `CREATE TABLE <name> (`: its first mention is the name.
        let mut statements = vec![
            format!("{} WITHOUT ROWID", create.replacen(table, &rebuilt, 1)),
            format!("INSERT INTO {rebuilt} SELECT * FROM {table}"),
            format!("DROP TABLE {table}"),
            format!("ALTER TABLE {rebuilt} RENAME TO {table}"),
        ];
        statements.extend(indexes);
        for sql in statements {
            query(dynamic(sql)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        tracing::info!(table, "stored on its primary key (WITHOUT ROWID)");
    }
    Ok(())
}
