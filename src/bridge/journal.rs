//! [`Journal`]: the results of calls, on disk (a redb file), recorded before their answers are sent. After a crash
//! and a restart with the same file, a call that had completed but is still pending upstream gets its recorded
//! result instead of a second run of its skill; a call that was still running runs again.
//!
//! Writes go through one thread that commits them in batches (one fsync for every result that arrived while the
//! previous commit ran), so the cost per call falls as the load rises. Entries older than
//! [`RETENTION`] are removed when the file is opened and every [`PRUNE_EVERY`] writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use tokio::sync::oneshot;

use super::store::CallKey;
use crate::skill::ToolResult;
use crate::telemetry::unix_ms;

/// Call key → the time it completed (Unix ms, 8 bytes little-endian) followed by the result as JSON.
const RESULTS: TableDefinition<&str, &[u8]> = TableDefinition::new("results");

/// How long a result is kept: far longer than a call stays pending upstream.
pub(crate) const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Writes between two removals of expired entries.
const PRUNE_EVERY: u64 = 10_000;

/// Most results committed in one transaction.
const BATCH: usize = 1024;

/// Why the journal could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the journal {path}: {source}")]
pub struct JournalError {
    path: PathBuf,
    source: redb::Error,
}

/// A result to record, and who waits until it is on disk.
struct Write {
    key: String,
    value: Vec<u8>,
    done: oneshot::Sender<()>,
}

/// The results of calls, on disk. Dropping it waits for the writes under way and closes the file.
pub(crate) struct Journal {
    db: Arc<Database>,
    writes: Option<mpsc::Sender<Write>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Journal {
    fn drop(&mut self) {
        drop(self.writes.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path` and removes expired entries.
    pub(crate) fn open(path: &Path) -> Result<Self, JournalError> {
        let error = |source: redb::Error| JournalError {
            path: path.to_owned(),
            source,
        };
        let db = Arc::new(Database::create(path).map_err(|e| error(e.into()))?);
        let removed = prune(&db).map_err(error)?;
        tracing::info!(path = %path.display(), removed, "journal opened");
        let (writes, pending) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("skillbridge-journal".into())
            .spawn(move || write_loop(&writer_db, &pending))
            .map_err(|e| error(redb::Error::Io(e)))?;
        Ok(Self {
            db,
            writes: Some(writes),
            writer: Some(writer),
        })
    }

    /// The recorded result of `key`, if it completed within the retention time.
    pub(crate) fn lookup(&self, key: &CallKey) -> Option<ToolResult> {
        let read = || -> Result<Option<ToolResult>, redb::Error> {
            let transaction = self.db.begin_read()?;
            let table = match transaction.open_table(RESULTS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(error) => return Err(error.into()),
            };
            let Some(value) = table.get(key.encoded().as_str())? else {
                return Ok(None);
            };
            Ok(decode(value.value()))
        };
        read().unwrap_or_else(|error| {
            tracing::error!(%error, "could not read the journal; the call runs as a new one");
            None
        })
    }

    /// Records `result` for `key` and returns once it is on disk (or the write failed, which is logged: the
    /// answer is not held back for it).
    pub(crate) async fn completed(&self, key: &CallKey, result: &ToolResult) {
        let (done, written) = oneshot::channel();
        let value = encode(unix_ms(std::time::SystemTime::now()), result);
        let write = Write {
            key: key.encoded(),
            value,
            done,
        };
        if self.writes.as_ref().is_some_and(|writes| writes.send(write).is_ok()) {
            let _ = written.await;
        }
    }
}

fn encode(at_ms: u64, result: &ToolResult) -> Vec<u8> {
    let mut value = at_ms.to_le_bytes().to_vec();
    // A ToolResult is plain data: serializing it cannot fail.
    value.extend(serde_json::to_vec(result).unwrap_or_default());
    value
}

fn decode(value: &[u8]) -> Option<ToolResult> {
    serde_json::from_slice(value.get(8..)?).ok()
}

fn recorded_at(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Commits the writes in batches until every sender is gone.
fn write_loop(db: &Database, pending: &mpsc::Receiver<Write>) {
    let mut since_prune = 0u64;
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        batch.extend(pending.try_iter().take(BATCH - 1));
        if let Err(error) = commit(db, &batch) {
            tracing::error!(%error, results = batch.len(), "could not write to the journal; those calls would run again after a crash");
        }
        since_prune += batch.len() as u64;
        for write in batch {
            let _ = write.done.send(());
        }
        if since_prune >= PRUNE_EVERY {
            since_prune = 0;
            if let Err(error) = prune(db) {
                tracing::warn!(%error, "could not remove expired journal entries");
            }
        }
    }
}

fn commit(db: &Database, batch: &[Write]) -> Result<(), redb::Error> {
    let transaction = db.begin_write()?;
    {
        let mut table = transaction.open_table(RESULTS)?;
        for write in batch {
            table.insert(write.key.as_str(), write.value.as_slice())?;
        }
    }
    transaction.commit()?;
    Ok(())
}

/// Removes the entries older than [`RETENTION`]; returns how many.
fn prune(db: &Database) -> Result<usize, redb::Error> {
    let cutoff = unix_ms(std::time::SystemTime::now()).saturating_sub(RETENTION.as_millis() as u64);
    let transaction = db.begin_write()?;
    let removed = {
        let mut table = transaction.open_table(RESULTS)?;
        let before = table.len()?;
        table.retain(|_, value| recorded_at(value) >= cutoff)?;
        before - table.len()?
    };
    transaction.commit()?;
    Ok(removed as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::ToolCall;

    fn key(id: &str) -> CallKey {
        CallKey::of(&ToolCall {
            request_id: id.into(),
            thread_id: "t".into(),
            turn_id: Some("u".into()),
            call_id: format!("call_{id}"),
            tool: "echo".into(),
            arguments: serde_json::Value::Null,
        })
    }

    #[tokio::test]
    async fn a_recorded_result_outlives_the_process_and_old_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.redb");
        {
            let journal = Journal::open(&path).unwrap();
            journal.completed(&key("1"), &ToolResult::text("done")).await;
            assert_eq!(journal.lookup(&key("1")), Some(ToolResult::text("done")));
            assert_eq!(journal.lookup(&key("2")), None);
        }
        let reopened = Journal::open(&path).unwrap();
        assert_eq!(
            reopened.lookup(&key("1")),
            Some(ToolResult::text("done")),
            "after a restart"
        );

        let expired = encode(0, &ToolResult::text("old"));
        commit(
            &reopened.db,
            &[Write {
                key: key("old").encoded(),
                value: expired,
                done: oneshot::channel().0,
            }],
        )
        .unwrap();
        assert_eq!(prune(&reopened.db).unwrap(), 1);
        assert_eq!(reopened.lookup(&key("old")), None);
        assert_eq!(reopened.lookup(&key("1")), Some(ToolResult::text("done")));
    }
}
