//! One statement API over two drivers: sqlx (PostgreSQL, and SQLite reads) and rusqlite (the
//! SQLite writer).
//!
//! Every query function of the store is written once against [`Conn`] (`dyn Exec`): it builds
//! a [`Query`] — SQL text from this module's children and bound arguments — and runs it on
//! whatever connection it was handed. The group-commit writer hands it a rusqlite connection
//! it owns on its own thread, so a unit's statements run with cached prepared statements and
//! no hand-off to a driver thread per statement (sqlx runs SQLite on a worker thread and pays
//! two context switches for every statement; at group-commit rates that was the ceiling).
//!
//! Arguments are typed even when null: PostgreSQL refuses a `bigint` null for a `text` column.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;

use super::{StoreError, StoreResult};

/// SQL text the store itself assembled (constants, column lists, placeholder numbers): no
/// caller-supplied text is ever formatted into a statement, only bound.
#[derive(Debug, Clone)]
pub(crate) struct Sql(Cow<'static, str>);

impl From<&'static str> for Sql {
    fn from(s: &'static str) -> Sql {
        Sql(Cow::Borrowed(s))
    }
}

/// Marks SQL assembled from the store's own constants as safe to run.
pub(crate) fn dynamic(sql: String) -> Sql {
    Sql(Cow::Owned(sql))
}

/// A bound argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    /// An integer (or a typed integer null).
    Int(Option<i64>),
    /// Text (or a typed text null).
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Int(Some(i64::from(v)))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}
impl From<Option<&String>> for Arg {
    fn from(v: Option<&String>) -> Arg {
        Arg::Text(v.cloned())
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Arg {
        Arg::Text(v.clone())
    }
}

/// A statement with its arguments, run by one of the `fetch`/`execute` methods.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until it is run"]
pub(crate) struct Query {
    sql: Sql,
    args: Vec<Arg>,
}

/// Starts a statement.
pub(crate) fn query(sql: impl Into<Sql>) -> Query {
    Query {
        sql: sql.into(),
        args: Vec::new(),
    }
}

/// What a statement without rows did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done(u64);

impl Done {
    /// Rows inserted, updated or deleted.
    pub(crate) fn rows_affected(&self) -> u64 {
        self.0
    }
}

impl Query {
    /// Binds the next argument (`$1`, `$2`, … in order).
    pub(crate) fn bind(mut self, v: impl Into<Arg>) -> Query {
        self.args.push(v.into());
        self
    }

    /// Runs a statement that returns no rows.
    pub(crate) async fn execute(self, conn: &mut Conn) -> StoreResult<Done> {
        Ok(Done(conn.run(&self.sql.0, self.args, false).await?.0))
    }

    /// Runs a statement and returns its rows.
    pub(crate) async fn fetch_all(self, conn: &mut Conn) -> StoreResult<Vec<Row>> {
        Ok(conn.run(&self.sql.0, self.args, true).await?.1)
    }

    /// Runs a statement and returns its first row, if any.
    pub(crate) async fn fetch_optional(self, conn: &mut Conn) -> StoreResult<Option<Row>> {
        Ok(self.fetch_all(conn).await?.into_iter().next())
    }

    /// Runs a statement that must return a row.
    pub(crate) async fn fetch_one(self, conn: &mut Conn) -> StoreResult<Row> {
        let Query { sql, args } = self;
        conn.run(&sql.0, args, true)
            .await?
            .1
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt(format!("no row returned by `{}`", sql.0)))
    }
}

/// A page of one table in keyset order — by `(order, id)`, ascending or descending — after
/// the row whose `id` is the cursor: the one shape of every cursor-paginated list but
/// payments'. `filters` are `column = value` conditions on top of the fixed `scope`.
pub(crate) struct Keyset {
    /// `SELECT … FROM table`.
    pub(crate) select: String,
    /// The table (for the cursor's row).
    pub(crate) table: &'static str,
    /// A fixed condition (`1 = 1` for none).
    pub(crate) scope: &'static str,
    /// The ordering column.
    pub(crate) order: &'static str,
    /// The unique id column (tie-break and cursor).
    pub(crate) id: &'static str,
    /// Oldest first (else newest first).
    pub(crate) ascending: bool,
}

impl Keyset {
    /// The page query: at most `limit` rows matching `filters`, after `after` if given.
    pub(crate) fn page(&self, filters: &[(&str, &str)], after: Option<&str>, limit: i64) -> Query {
        let Keyset {
            select,
            table,
            scope,
            order,
            id,
            ascending,
        } = self;
        let (dir, cmp) = if *ascending {
            ("ASC", ">")
        } else {
            ("DESC", "<")
        };
        let mut sql = format!("{select} WHERE {scope}");
        let mut args: Vec<Arg> = Vec::new();
        for (column, value) in filters {
            args.push((*value).into());
            sql.push_str(&format!(" AND {column} = ${}", args.len()));
        }
        if let Some(a) = after {
            args.push(a.into());
            sql.push_str(&format!(
                " AND ({order}, {id}) {cmp} (SELECT {order}, {id} FROM {table} WHERE {id} = ${})",
                args.len()
            ));
        }
        args.push(limit.into());
        sql.push_str(&format!(
            " ORDER BY {order} {dir}, {id} {dir} LIMIT ${}",
            args.len()
        ));
        Query {
            sql: dynamic(sql),
            args,
        }
    }
}

/// A connection a [`Query`] can run on.
#[async_trait]
pub(crate) trait Exec: Send {
    /// Runs `sql` with `args`; returns the rows changed and, when `rows`, the rows returned.
    async fn run(&mut self, sql: &str, args: Vec<Arg>, rows: bool) -> StoreResult<(u64, Vec<Row>)>;

    /// Runs statements without arguments (transaction control), one after the other.
    async fn batch(&mut self, sql: &str) -> StoreResult<()>;

    /// Which engine this connection talks to.
    fn backend(&self) -> super::Backend;

    /// The endpoint lists this connection remembers, when it keeps any (the SQLite writer:
    /// the one connection that writes, so it can tell when they may have changed).
    fn endpoint_cache(&mut self) -> Option<&mut super::webhooks::EndpointCache> {
        None
    }
}

/// What the store's query functions take.
pub(crate) type Conn = dyn Exec;

#[async_trait]
impl Exec for sqlx::AnyConnection {
    async fn run(&mut self, sql: &str, args: Vec<Arg>, rows: bool) -> StoreResult<(u64, Vec<Row>)> {
        metrics::counter!("corridor_db_statements_total", "conn" => "pool").increment(1);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
        for a in args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
            };
        }
        if rows {
            let rows = q.fetch_all(&mut *self).await?;
            Ok((rows.len() as u64, rows.into_iter().map(Row::Any).collect()))
        } else {
            Ok((q.execute(&mut *self).await?.rows_affected(), Vec::new()))
        }
    }

    async fn batch(&mut self, sql: &str) -> StoreResult<()> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    fn backend(&self) -> super::Backend {
        if self.backend_name() == "PostgreSQL" {
            super::Backend::Postgres
        } else {
            super::Backend::Sqlite
        }
    }
}

/// A SQLite connection run in place by its holder (the group-commit writer, or a reader of
/// [`LitePool`]), with statements prepared once and cached by their text; the `&str` names the
/// connection's role in `corridor_db_statements_total`. The writer's also remembers the
/// merchants' endpoint lists (see [`super::webhooks::EndpointCache`]).
pub(crate) struct Lite(
    pub(crate) rusqlite::Connection,
    pub(crate) &'static str,
    pub(crate) Option<super::webhooks::EndpointCache>,
);

impl Lite {
    /// Runs one statement without arguments or rows (transaction control), prepared once: the
    /// writer runs these for every batch (and, with savepoints, every unit), and parsing them
    /// each time showed in its profile.
    pub(crate) fn control(&mut self, sql: &str) -> StoreResult<()> {
        self.0.prepare_cached(sql)?.raw_execute()?;
        Ok(())
    }

    /// A pragma's integer value, read through a prepared statement.
    pub(crate) fn pragma_int(&mut self, sql: &str) -> StoreResult<i64> {
        Ok(self.0.prepare_cached(sql)?.query_row([], |r| r.get(0))?)
    }

    fn run_now(&mut self, sql: &str, args: Vec<Arg>, rows: bool) -> StoreResult<(u64, Vec<Row>)> {
        use rusqlite::types::Value;
        metrics::counter!("corridor_db_statements_total", "conn" => self.1).increment(1);
        let mut stmt = self.0.prepare_cached(sql)?;
        // `$N` is SQLite's named parameter "$N": bind by its number, as sqlx does, so a
        // placeholder may repeat or appear out of order.
        for i in 1..=stmt.parameter_count() {
            let n = stmt
                .parameter_name(i)
                .and_then(|name| name.get(1..))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(i);
            let arg = args.get(n - 1).ok_or_else(|| {
                StoreError::Corrupt(format!("statement wants argument {n}: `{sql}`"))
            })?;
            match arg {
                Arg::Int(v) => stmt.raw_bind_parameter(i, v)?,
                Arg::Text(v) => stmt.raw_bind_parameter(i, v)?,
            }
        }
        if stmt.column_count() == 0 {
            let changed = stmt.raw_execute()?;
            return Ok((changed as u64, Vec::new()));
        }
        let names: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let width = names.len();
        let mut out = Vec::new();
        let mut cursor = stmt.raw_query();
        while let Some(r) = cursor.next()? {
            // A statement run for its effect (a write with RETURNING) is stepped to the end,
            // its rows not kept.
            if !rows {
                continue;
            }
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(r.get::<_, Value>(i)?);
            }
            out.push(Row::Lite {
                names: names.clone(),
                values,
            });
        }
        drop(cursor);
        let changed = if rows {
            out.len() as u64
        } else {
            self.0.changes()
        };
        Ok((changed, out))
    }
}

#[async_trait]
impl Exec for Lite {
    async fn run(&mut self, sql: &str, args: Vec<Arg>, rows: bool) -> StoreResult<(u64, Vec<Row>)> {
        self.run_now(sql, args, rows)
    }

    async fn batch(&mut self, sql: &str) -> StoreResult<()> {
        Ok(self.0.execute_batch(sql)?)
    }

    fn backend(&self) -> super::Backend {
        super::Backend::Sqlite
    }

    fn endpoint_cache(&mut self) -> Option<&mut super::webhooks::EndpointCache> {
        self.2.as_mut()
    }
}

/// Read connections on a SQLite file, run in place by the task that asks (WAL readers never
/// wait for the writer, and an indexed read takes microseconds: less than handing it to a
/// driver thread and back). Opened on demand; up to `keep` are kept idle for reuse.
pub(crate) struct LitePool {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<Lite>>,
    keep: usize,
}

impl std::fmt::Debug for LitePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LitePool")
            .field("path", &self.path)
            .finish()
    }
}

impl LitePool {
    /// A pool on `path` keeping up to `keep` idle connections.
    pub(crate) fn new(path: std::path::PathBuf, keep: usize) -> Arc<LitePool> {
        Arc::new(LitePool {
            path,
            idle: std::sync::Mutex::new(Vec::new()),
            keep,
        })
    }

    /// A connection for reads.
    pub(crate) fn get(self: &Arc<Self>) -> StoreResult<LiteReader> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                use rusqlite::OpenFlags;
                let c = rusqlite::Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                // Reads only: a bug that tried to write here fails instead of racing the
                // writer for the lock.
                c.execute_batch(
                    "PRAGMA busy_timeout = 5000; PRAGMA query_only = ON; PRAGMA temp_store = MEMORY;",
                )?;
                c.set_prepared_statement_cache_capacity(128);
                Lite(c, "reader", None)
            }
        };
        Ok(LiteReader {
            conn: Some(conn),
            pool: self.clone(),
        })
    }
}

/// A read connection borrowed from a [`LitePool`], given back when dropped.
pub(crate) struct LiteReader {
    conn: Option<Lite>,
    pool: Arc<LitePool>,
}

impl LiteReader {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut Lite {
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }

    /// The connection, shared.
    pub(crate) fn conn_ref(&self) -> &Lite {
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }
}

impl Drop for LiteReader {
    fn drop(&mut self) {
        let Some(c) = self.conn.take() else { return };
        // A connection left inside a transaction (a read that failed half-way) is closed,
        // not reused.
        if !c.0.is_autocommit() {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.pool.keep {
            idle.push(c);
        }
    }
}

/// A row from either driver.
pub(crate) enum Row {
    /// From sqlx.
    Any(sqlx::any::AnyRow),
    /// From rusqlite.
    Lite {
        /// Column names, shared by the statement's rows.
        names: Arc<[String]>,
        /// Values in column order.
        values: Vec<rusqlite::types::Value>,
    },
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Row")
    }
}

/// A column type the store reads.
pub(crate) trait Column: Sized {
    /// From a sqlx row.
    fn from_any(row: &sqlx::any::AnyRow, name: &str) -> Result<Self, String>;
    /// From a rusqlite value.
    fn from_lite(v: &rusqlite::types::Value) -> Result<Self, String>;
}

fn any_get<T>(row: &sqlx::any::AnyRow, name: &str) -> Result<T, String>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row as _;
    row.try_get(name).map_err(|e| e.to_string())
}

impl Column for Option<i64> {
    fn from_any(row: &sqlx::any::AnyRow, name: &str) -> Result<Self, String> {
        any_get(row, name)
    }
    fn from_lite(v: &rusqlite::types::Value) -> Result<Self, String> {
        use rusqlite::types::Value;
        match v {
            Value::Null => Ok(None),
            Value::Integer(i) => Ok(Some(*i)),
            other => Err(format!(
                "expected an integer, found {:?}",
                other.data_type()
            )),
        }
    }
}

impl Column for Option<String> {
    fn from_any(row: &sqlx::any::AnyRow, name: &str) -> Result<Self, String> {
        any_get(row, name)
    }
    fn from_lite(v: &rusqlite::types::Value) -> Result<Self, String> {
        use rusqlite::types::Value;
        match v {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => Err(format!("expected text, found {:?}", other.data_type())),
        }
    }
}

impl Column for i64 {
    fn from_any(row: &sqlx::any::AnyRow, name: &str) -> Result<Self, String> {
        any_get(row, name)
    }
    fn from_lite(v: &rusqlite::types::Value) -> Result<Self, String> {
        Option::<i64>::from_lite(v)?.ok_or_else(|| "unexpected null".to_owned())
    }
}

impl Column for String {
    fn from_any(row: &sqlx::any::AnyRow, name: &str) -> Result<Self, String> {
        any_get(row, name)
    }
    fn from_lite(v: &rusqlite::types::Value) -> Result<Self, String> {
        Option::<String>::from_lite(v)?.ok_or_else(|| "unexpected null".to_owned())
    }
}

impl Column for bool {
    fn from_any(row: &sqlx::any::AnyRow, name: &str) -> Result<Self, String> {
        // Booleans are stored as integers on both engines.
        any_get::<i64>(row, name).map(|v| v != 0)
    }
    fn from_lite(v: &rusqlite::types::Value) -> Result<Self, String> {
        i64::from_lite(v).map(|v| v != 0)
    }
}

impl Row {
    /// Reads column `name`.
    pub(crate) fn get<T: Column>(&self, name: &str) -> Result<T, String> {
        match self {
            Row::Any(r) => T::from_any(r, name),
            Row::Lite { names, values } => {
                let i = names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| format!("no column {name}"))?;
                T::from_lite(&values[i])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lite() -> Lite {
        Lite(
            rusqlite::Connection::open_in_memory().expect("in-memory SQLite"),
            "test",
            None,
        )
    }

    #[test]
    fn placeholders_bind_by_their_number_repeated_or_out_of_order() {
        let mut c = lite();
        let rows = futures::executor::block_on(
            query("SELECT $2 AS a, $1 AS b, $2 AS c, $3 AS d")
                .bind(7_i64)
                .bind("x")
                .bind(None::<String>)
                .fetch_all(&mut c),
        )
        .expect("query runs");
        let row = &rows[0];
        assert_eq!(row.get::<String>("a").unwrap(), "x");
        assert_eq!(row.get::<i64>("b").unwrap(), 7);
        assert_eq!(row.get::<String>("c").unwrap(), "x");
        assert_eq!(row.get::<Option<String>>("d").unwrap(), None);
        // A type mismatch is an error, not a silent conversion.
        assert!(row.get::<i64>("a").is_err());
        assert!(row.get::<i64>("missing").is_err());
    }

    #[test]
    fn a_statement_missing_an_argument_is_refused_and_changes_are_counted() {
        let mut c = lite();
        futures::executor::block_on(async {
            c.batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
                .await
                .unwrap();
            let err = query("INSERT INTO t (k, v) VALUES ($1, $2)")
                .bind("a")
                .execute(&mut c)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
            for k in ["a", "b"] {
                query("INSERT INTO t (k, v) VALUES ($1, $2)")
                    .bind(k)
                    .bind(1_i64)
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            let done = query("UPDATE t SET v = v + 1")
                .execute(&mut c)
                .await
                .unwrap();
            assert_eq!(done.rows_affected(), 2);
            // A unique violation is a constraint error (a unit's own fault, not the batch's).
            let dup = query("INSERT INTO t (k, v) VALUES ($1, 0)")
                .bind("a")
                .execute(&mut c)
                .await
                .unwrap_err();
            assert!(dup.is_constraint(), "{dup}");
            // RETURNING rows come back from a write.
            let rows = query("UPDATE t SET v = 0 WHERE k = $1 RETURNING k")
                .bind("b")
                .fetch_all(&mut c)
                .await
                .unwrap();
            assert_eq!(rows.len(), 1);
        });
    }
}
