//! Read-only SQL over SQLite files: run one `SELECT`, or list the tables and their columns.
//!
//! **Which files**: the operator names them in the settings file, `[skills.sql] databases = { main =
//! "/srv/main.db" }` ([`SqlSettings`]); the binary turns that table into the skills' shared state,
//! [`SqlDatabases`] (`State<SqlDatabases>`), checking at start-up that every path is a file. The model picks a
//! database **by name**, never by path. The design, kept simple: the skills take a plain `database: String`
//! parameter, and [`states`] registers the configured names as its choices (`States::choices`), so the catalog
//! built with that state announces `database` with `"enum": [the names]`, the list the model chooses from. Since
//! a model may still send anything, the skills look the name up in the state and refuse any other value (a path
//! included) with an error listing the configured names. With no database configured the schema has no enum and
//! every call is refused with a message saying how to configure one.
//!
//! Databases are opened with `SQLITE_OPEN_READ_ONLY` (never created, never written), and a query must be a
//! single statement that SQLite itself reports as read-only and that starts with `SELECT`, `WITH` or `VALUES`.
//! A query stops when the call is cancelled (timeout or interrupted turn): SQLite's progress handler checks
//! the skill's cancellation token.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skillbridge::skill::{SkillContext, SkillError, States};
use skillbridge::{State, skill};

/// Rows returned when the call gives no `max_rows`.
const DEFAULT_MAX_ROWS: u32 = 100;
/// The most rows one query returns.
const MAX_ROWS: u32 = 1000;
/// SQLite virtual machine steps between two cancellation checks.
const STEPS_PER_CANCELLATION_CHECK: i32 = 10_000;

/// `[skills.sql]` of the settings file: the databases the SQL skills may read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlSettings {
    /// Each database's name (what the model chooses) and the path of its SQLite file.
    pub databases: BTreeMap<String, PathBuf>,
}

/// Why `[skills.sql]` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlSettingsError {
    /// A database name that is empty or not a plain word.
    #[error("databases: `{0}` is not a usable name; use letters, digits, `_`, `-` and `.`")]
    BadName(String),
    /// A configured path that is not a file.
    #[error("databases: `{name}` is {}, which is not a file", path.display())]
    NotAFile {
        /// The database's name.
        name: String,
        /// Its configured path.
        path: PathBuf,
    },
}

/// The databases the operator configured, by name: the state of [`sql_query`] and [`sql_tables`].
#[derive(Debug, Clone, Default)]
pub struct SqlDatabases {
    by_name: BTreeMap<String, PathBuf>,
}

impl SqlDatabases {
    /// The databases of `settings`, each checked to be a file.
    pub fn new(settings: SqlSettings) -> Result<Self, SqlSettingsError> {
        for (name, path) in &settings.databases {
            let usable = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !usable {
                return Err(SqlSettingsError::BadName(name.clone()));
            }
            if !path.is_file() {
                return Err(SqlSettingsError::NotAFile {
                    name: name.clone(),
                    path: path.clone(),
                });
            }
        }
        Ok(Self {
            by_name: settings.databases,
        })
    }

    /// The configured names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// The file of the database `name`; any other value, a path included, is refused with the configured names.
    fn path(&self, name: &str) -> Result<&Path, SkillError> {
        if let Some(path) = self.by_name.get(name) {
            return Ok(path);
        }
        if self.by_name.is_empty() {
            return Err(SkillError::new(
                "database: no databases are configured; the operator lists them in the settings file as \
                 [skills.sql] databases = { name = \"path\" }",
            ));
        }
        Err(format!(
            "database: no database named `{name}`; choose one of: {}",
            self.names().join(", ")
        )
        .into())
    }
}

/// The SQL skills' states for `settings`: the [`SqlDatabases`], with their names as the choices of the skills'
/// `database` parameter.
pub fn states(settings: SqlSettings) -> Result<States, SqlSettingsError> {
    let mut states = States::new();
    states
        .insert(SqlDatabases::new(settings)?)
        .choices("database", SqlDatabases::names);
    Ok(states)
}

/// The rows of a query.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct QueryResult {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// One array per row, values in column order (blobs are shown as `<blob: N bytes>`).
    pub rows: Vec<Vec<Value>>,
    /// `true` when the query had more rows than `max_rows`.
    pub truncated: bool,
}

/// A table and its columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TableInfo {
    /// The table (or view) name.
    pub name: String,
    /// `table` or `view`.
    pub kind: String,
    /// Its columns, in order.
    pub columns: Vec<ColumnInfo>,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ColumnInfo {
    /// The column name.
    pub name: String,
    /// The declared type (may be empty: SQLite columns need none).
    pub declared_type: String,
    /// Whether it is part of the primary key.
    pub primary_key: bool,
}

/// Runs one read-only SQL query (SELECT, WITH or VALUES) against a configured SQLite database and returns the rows.
#[skill(timeout = "30s", title = "SQL query", read_only, open_world = false, tags = ["sql"])]
pub fn sql_query(
    /// The database, by name: one of those the operator configured.
    database: String,
    /// One read-only statement, like `SELECT name FROM users WHERE active = 1`.
    query: String,
    /// At most this many rows, 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = MAX_ROWS))]
    max_rows: Option<u32>,
    databases: State<SqlDatabases>,
    ctx: SkillContext,
) -> Result<QueryResult, SkillError> {
    // `max_rows` is 1 to 1000: the catalog checks every call against the schema before the skill runs.
    let max_rows = max_rows.unwrap_or(DEFAULT_MAX_ROWS);
    check_read_only_syntax(&query)?;
    let connection = open_read_only(&databases, &database, &ctx)?;
    let mut statement = connection.prepare(&query).map_err(|error| query_error(error, &ctx))?;
    if !statement.readonly() {
        return Err("only read-only queries are allowed".into());
    }
    let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let mut rows = statement.query([]).map_err(|error| query_error(error, &ctx))?;
    let mut result = QueryResult {
        columns,
        rows: Vec::new(),
        truncated: false,
    };
    while let Some(row) = rows.next().map_err(|error| query_error(error, &ctx))? {
        if result.rows.len() == max_rows as usize {
            result.truncated = true;
            break;
        }
        let values = (0..result.columns.len())
            .map(|index| row.get_ref(index).map(json_value))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| query_error(error, &ctx))?;
        result.rows.push(values);
    }
    Ok(result)
}

/// Lists the tables and views of a configured SQLite database with their columns.
#[skill(timeout = "10s", title = "SQL tables", read_only, open_world = false, tags = ["sql"])]
pub fn sql_tables(
    /// The database, by name: one of those the operator configured.
    database: String,
    databases: State<SqlDatabases>,
    ctx: SkillContext,
) -> Result<Vec<TableInfo>, SkillError> {
    let connection = open_read_only(&databases, &database, &ctx)?;
    let mut tables = connection
        .prepare("SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|error| query_error(error, &ctx))?
        .into_iter()
        .map(|(name, kind)| TableInfo {
            name,
            kind,
            columns: Vec::new(),
        })
        .collect::<Vec<_>>();
    for table in &mut tables {
        table.columns = connection
            .prepare("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid")
            .and_then(|mut statement| {
                statement
                    .query_map([&table.name], |row| {
                        Ok(ColumnInfo {
                            name: row.get(0)?,
                            declared_type: row.get(1)?,
                            primary_key: row.get::<_, i64>(2)? > 0,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|error| query_error(error, &ctx))?;
    }
    Ok(tables)
}

/// Rejects what is visibly not a read query before SQLite sees it (SQLite's own read-only check follows).
fn check_read_only_syntax(query: &str) -> Result<(), SkillError> {
    let first_word: String = query
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    match first_word.as_str() {
        "SELECT" | "WITH" | "VALUES" => Ok(()),
        "" => Err("query: give one SELECT statement".into()),
        other => Err(format!("query: only SELECT, WITH and VALUES queries are allowed, not {other}").into()),
    }
}

fn open_read_only(databases: &SqlDatabases, database: &str, ctx: &SkillContext) -> Result<Connection, SkillError> {
    let path = databases.path(database)?;
    if !path.is_file() {
        return Err(format!("database: the file of `{database}` is gone").into());
    }
    // No SQLITE_OPEN_URI: the path is a plain file name, so `file:..?mode=rw` tricks cannot reopen it writable.
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut connection = Connection::open_with_flags(path, flags)
        .map_err(|error| SkillError::new(format!("database: cannot open `{database}`: {error}")))?;
    let token = ctx.cancellation().clone();
    connection
        .progress_handler(STEPS_PER_CANCELLATION_CHECK, Some(move || token.is_cancelled()))
        .map_err(|error| SkillError::new(format!("database: cannot watch for cancellation: {error}")))?;
    Ok(connection)
}

fn query_error(error: rusqlite::Error, ctx: &SkillContext) -> SkillError {
    if ctx.is_cancelled() {
        return SkillError::new("the query was cancelled");
    }
    match error {
        rusqlite::Error::MultipleStatement => SkillError::new("query: give exactly one statement"),
        other => SkillError::new(format!("query failed: {other}")),
    }
}

fn json_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(number) => Value::from(number),
        ValueRef::Real(number) => serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number),
        ValueRef::Text(bytes) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Blob(bytes) => Value::String(format!("<blob: {} bytes>", bytes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_statements_pass_the_syntax_check() {
        assert!(check_read_only_syntax("  select 1").is_ok());
        assert!(check_read_only_syntax("WITH x AS (SELECT 1) SELECT * FROM x").is_ok());
        assert_eq!(
            check_read_only_syntax("DELETE FROM t").unwrap_err().to_string(),
            "query: only SELECT, WITH and VALUES queries are allowed, not DELETE"
        );
    }

    fn databases(dir: &Path, names: &[&str]) -> SqlDatabases {
        let databases = names
            .iter()
            .map(|name| {
                let path = dir.join(format!("{name}.db"));
                Connection::open(&path).unwrap();
                (name.to_string(), path)
            })
            .collect();
        SqlDatabases::new(SqlSettings { databases }).unwrap()
    }

    #[test]
    fn only_configured_names_are_opened_never_paths() {
        let dir = tempfile::tempdir().unwrap();
        let configured = databases(dir.path(), &["main", "archive"]);
        assert_eq!(configured.names(), ["archive", "main"]);
        assert_eq!(configured.path("main").unwrap(), dir.path().join("main.db"));
        let path = dir.path().join("main.db").display().to_string();
        assert_eq!(
            configured.path(&path).unwrap_err().to_string(),
            format!("database: no database named `{path}`; choose one of: archive, main")
        );
        let none = SqlDatabases::default();
        assert!(
            none.path("main")
                .unwrap_err()
                .to_string()
                .starts_with("database: no databases are configured"),
        );
    }

    #[test]
    fn settings_are_checked_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        let settings = |name: &str, path: &Path| SqlSettings {
            databases: BTreeMap::from([(name.to_owned(), path.to_owned())]),
        };
        assert_eq!(
            SqlDatabases::new(settings("main", &missing)).unwrap_err().to_string(),
            format!("databases: `main` is {}, which is not a file", missing.display())
        );
        assert_eq!(
            SqlDatabases::new(settings("a b", dir.path())).unwrap_err(),
            SqlSettingsError::BadName("a b".into())
        );
    }

    #[test]
    fn values_map_to_json() {
        assert_eq!(json_value(ValueRef::Integer(3)), Value::from(3));
        assert_eq!(json_value(ValueRef::Real(f64::NAN)), Value::Null);
        assert_eq!(json_value(ValueRef::Blob(&[1, 2])), Value::from("<blob: 2 bytes>"));
    }
}
