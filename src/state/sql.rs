//! One way for the stores to talk to either backend.
//!
//! Every store (the audit trail, approvals, the registry, the replay
//! cache, schedule runs) is written once, against [`Sql`], so SQLite and
//! PostgreSQL cannot drift apart in behaviour: the same statements, the
//! same parameters, the same rows. Statements use SQLite's numbered
//! placeholders (`?1`); PostgreSQL gets them as `$1`. Values are the three
//! kinds the stores keep (integers, text, NULL), so nothing depends on a
//! driver's type mapping. The drivers themselves are `rusqlite` and
//! `postgres`; nothing here speaks a wire protocol.

use std::error::Error as StdError;

use postgres::types::{FromSql, IsNull, ToSql, Type};

/// A value in a statement or a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer (times are seconds since the epoch, flags are 0 or 1).
    Int(i64),
    /// Text (JSON documents are kept as text on both backends).
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v.into())
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v as i64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v.into())
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// One row of a result, read by position.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// The integer at `i` (0 for NULL or text).
    pub fn int(&self, i: usize) -> i64 {
        match self.0.get(i) {
            Some(Value::Int(v)) => *v,
            Some(Value::Text(t)) => t.parse().unwrap_or_default(),
            _ => 0,
        }
    }

    /// The integer at `i`, or `None` for NULL.
    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Value::Null) | None => None,
            _ => Some(self.int(i)),
        }
    }

    /// The text at `i` (empty for NULL).
    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }

    /// The text at `i`, or `None` for NULL.
    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.0.get(i) {
            Some(Value::Text(t)) => Some(t.clone()),
            Some(Value::Int(v)) => Some(v.to_string()),
            _ => None,
        }
    }
}

/// A failed statement: what the driver said, and whether the database
/// could not be reached at all (fail closed, exit 5) rather than refused
/// the statement.
#[derive(Debug, Clone)]
pub struct DbError {
    /// The driver's message.
    pub message: String,
    /// The connection was lost or never made.
    pub unreachable: bool,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        DbError { message: e.to_string(), unreachable: false }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> DbError {
        // The server's own words when it has some, else the driver's.
        let message = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        };
        let lost = e.as_db_error().is_none() && e.source().is_some_and(|s| s.is::<std::io::Error>());
        DbError { message, unreachable: e.is_closed() || lost }
    }
}

impl From<DbError> for crate::error::Error {
    /// A statement's failure where the store adds nothing (a commit): exit
    /// 5 when the database went away, else exit 2.
    fn from(e: DbError) -> crate::error::Error {
        if e.unreachable {
            crate::error::Error::Unreachable(format!("state database: {e} (dockmaster fails closed)"))
        } else {
            crate::error::Error::Usage(format!("state database: {e}"))
        }
    }
}

/// The result of a statement.
pub type DbResult<T> = std::result::Result<T, DbError>;

/// Which SQL a backend speaks, for the few places the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// The text of field `key` of the JSON object in `column`.
    pub fn json_text(self, column: &str, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({column}, '$.{key}')"),
            Dialect::Postgres => format!("(({column})::jsonb ->> '{key}')"),
        }
    }
}

/// Statements and queries, on a connection or inside a transaction.
pub trait Sql {
    /// Which SQL this speaks.
    fn dialect(&self) -> Dialect;
    /// Runs one statement; the number of rows it changed.
    fn exec(&mut self, sql: &str, params: &[Value]) -> DbResult<u64>;
    /// Runs one query; its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>>;

    /// The first row of a query, if any.
    fn query_opt(&mut self, sql: &str, params: &[Value]) -> DbResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// An open connection to one backend.
pub enum Conn {
    /// A SQLite file.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL session.
    Postgres(Box<postgres::Client>),
}

/// An open transaction; committed by [`Conn::transaction`] when its body
/// succeeds, rolled back otherwise.
pub enum Tx<'a> {
    /// On SQLite: `BEGIN IMMEDIATE`, so one writer at a time.
    Sqlite(rusqlite::Transaction<'a>),
    /// On PostgreSQL, with the tables it writes locked against other writers.
    Postgres(postgres::Transaction<'a>),
}

impl Conn {
    /// Runs `body` in one transaction that holds the write side of
    /// `tables` against every other writer until it commits (SQLite: the
    /// database's write lock; PostgreSQL: `LOCK TABLE … IN EXCLUSIVE
    /// MODE`, which readers pass). For read-then-write steps such as the
    /// audit chain's next link or a registry's next version.
    pub fn transaction<T, E: From<DbError>>(
        &mut self,
        tables: &[&str],
        body: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match self {
            Conn::Sqlite(conn) => {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(DbError::from)?;
                let mut tx = Tx::Sqlite(tx);
                let value = body(&mut tx)?;
                if let Tx::Sqlite(tx) = tx {
                    tx.commit().map_err(DbError::from)?;
                }
                Ok(value)
            }
            Conn::Postgres(client) => {
                let mut tx = client.transaction().map_err(DbError::from)?;
                for table in tables {
                    tx.batch_execute(&format!("LOCK TABLE {table} IN EXCLUSIVE MODE")).map_err(DbError::from)?;
                }
                let mut tx = Tx::Postgres(tx);
                let value = body(&mut tx)?;
                if let Tx::Postgres(tx) = tx {
                    tx.commit().map_err(DbError::from)?;
                }
                Ok(value)
            }
        }
    }

    /// Runs a script of statements with no parameters (schemas).
    pub fn batch(&mut self, script: &str) -> DbResult<()> {
        match self {
            Conn::Sqlite(conn) => Ok(conn.execute_batch(script)?),
            Conn::Postgres(client) => Ok(client.batch_execute(script)?),
        }
    }
}

impl Sql for Conn {
    fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    fn exec(&mut self, sql: &str, params: &[Value]) -> DbResult<u64> {
        match self {
            Conn::Sqlite(conn) => sqlite_exec(conn, sql, params),
            Conn::Postgres(client) => Ok(client.execute(&dollars(sql), &pg_params(params))?),
        }
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        match self {
            Conn::Sqlite(conn) => sqlite_query(conn, sql, params),
            Conn::Postgres(client) => pg_rows(client.query(&dollars(sql), &pg_params(params))?),
        }
    }
}

impl Sql for Tx<'_> {
    fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    fn exec(&mut self, sql: &str, params: &[Value]) -> DbResult<u64> {
        match self {
            Tx::Sqlite(tx) => sqlite_exec(tx, sql, params),
            Tx::Postgres(tx) => Ok(tx.execute(&dollars(sql), &pg_params(params))?),
        }
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        match self {
            Tx::Sqlite(tx) => sqlite_query(tx, sql, params),
            Tx::Postgres(tx) => pg_rows(tx.query(&dollars(sql), &pg_params(params))?),
        }
    }
}

fn sqlite_exec(conn: &rusqlite::Connection, sql: &str, params: &[Value]) -> DbResult<u64> {
    let mut stmt = conn.prepare_cached(sql)?;
    Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
}

fn sqlite_query(conn: &rusqlite::Connection, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let width = stmt.column_count();
    let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |row| {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(match row.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(v) => Value::Int(v),
                rusqlite::types::ValueRef::Real(v) => Value::Int(v as i64),
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    Value::Text(String::from_utf8_lossy(t).into_owned())
                }
            });
        }
        Ok(Row(values))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

/// `?1` placeholders as PostgreSQL's `$1`. The stores' statements hold no
/// `?` inside string literals.
pub fn dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn pg_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn pg_rows(rows: Vec<postgres::Row>) -> DbResult<Vec<Row>> {
    rows.iter()
        .map(|row| (0..row.len()).map(|i| row.try_get::<_, Value>(i)).collect::<Result<Vec<_>, _>>().map(Row))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DbError::from)
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::INT8 => v.to_sql(ty, out),
                _ => v.to_string().to_sql(ty, out),
            },
            Value::Text(t) => match *ty {
                Type::INT8 => t.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => t.parse::<i32>()?.to_sql(ty, out),
                _ => t.as_str().to_sql(ty, out),
            },
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8 | Type::BOOL | Type::TEXT | Type::VARCHAR | Type::BPCHAR)
    }

    postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2 | Type::INT4 | Type::INT8 | Type::BOOL | Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_become_dollars() {
        assert_eq!(dollars("SELECT a FROM t WHERE b = ?1 AND c = ?12"), "SELECT a FROM t WHERE b = $1 AND c = $12");
        assert_eq!(dollars("SELECT '?' FROM t"), "SELECT '?' FROM t");
    }

    #[test]
    fn sqlite_rows_read_back_as_written() {
        let mut conn = Conn::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        conn.batch("CREATE TABLE t (a INTEGER, b TEXT)").unwrap();
        conn.exec("INSERT INTO t (a, b) VALUES (?1, ?2)", &[7i64.into(), Option::<String>::None.into()]).unwrap();
        let rows = conn.query("SELECT a, b FROM t WHERE a = ?1", &[7i64.into()]).unwrap();
        assert_eq!(rows[0].int(0), 7);
        assert_eq!(rows[0].opt_text(1), None);
        let err = conn
            .transaction(&["t"], |tx| {
                tx.exec("INSERT INTO t (a, b) VALUES (1, 'x')", &[])?;
                Err::<(), _>(DbError { message: "stop".into(), unreachable: false })
            })
            .unwrap_err();
        assert_eq!(err.message, "stop");
        assert_eq!(conn.query("SELECT count(*) FROM t", &[]).unwrap()[0].int(0), 1, "rolled back");
    }
}
