//! A scratchpad per conversation: the model saves short notes and reads them back later in the same thread.
//!
//! Notes are keyed by the call's thread id (from the injected `SkillContext`), kept in memory in the skills'
//! shared state ([`Scratchpads`], taken as `State<Scratchpads>`), and gone when the process exits. Sizes are
//! bounded so that a runaway model cannot grow the process without limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use skillbridge::skill::{SkillContext, SkillError};
use skillbridge::{State, skill};

/// Notes one thread may keep.
const MAX_NOTES_PER_THREAD: usize = 100;
/// The longest note, in characters.
const MAX_NOTE_CHARS: usize = 4000;
/// The longest key, in characters.
const MAX_KEY_CHARS: usize = 64;
/// Threads with notes at once; the least recently written thread is forgotten past this.
const MAX_THREADS: usize = 1000;

/// The notes of every conversation: the state the note skills share.
#[derive(Default)]
pub struct Scratchpads(Mutex<Pads>);

#[derive(Default)]
struct Pads {
    threads: HashMap<String, Pad>,
    writes: u64,
}

#[derive(Default)]
struct Pad {
    notes: BTreeMap<String, String>,
    last_write: u64,
}

impl Scratchpads {
    fn lock(&self) -> MutexGuard<'_, Pads> {
        // A panic while holding the lock leaves plain maps behind, which are still consistent.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Saves a short note under a key for later in this conversation (replacing a note with the same key).
#[skill(title = "Save a note", read_only = false, destructive, idempotent, open_world = false, tags = ["notes"])]
pub async fn note_save(
    /// A short name for the note, like `customer` or `open_question`.
    key: String,
    /// The note; at most 4000 characters.
    text: String,
    scratchpads: State<Scratchpads>,
    ctx: SkillContext,
) -> Result<String, SkillError> {
    let key = key.trim().to_owned();
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(format!("key: give 1 to {MAX_KEY_CHARS} characters").into());
    }
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("text: a note holds at most {MAX_NOTE_CHARS} characters").into());
    }
    let mut pads = scratchpads.lock();
    pads.writes += 1;
    let write = pads.writes;
    if !pads.threads.contains_key(&ctx.thread_id) && pads.threads.len() >= MAX_THREADS {
        let stalest = pads
            .threads
            .iter()
            .min_by_key(|(_, pad)| pad.last_write)
            .map(|(thread, _)| thread.clone());
        if let Some(stalest) = stalest {
            pads.threads.remove(&stalest);
        }
    }
    let pad = pads.threads.entry(ctx.thread_id.clone()).or_default();
    if !pad.notes.contains_key(&key) && pad.notes.len() >= MAX_NOTES_PER_THREAD {
        return Err(format!("this conversation already has {MAX_NOTES_PER_THREAD} notes; overwrite one").into());
    }
    pad.last_write = write;
    let replaced = pad.notes.insert(key.clone(), text).is_some();
    Ok(if replaced {
        format!("replaced note `{key}`")
    } else {
        format!("saved note `{key}`")
    })
}

/// Reads the notes saved earlier in this conversation: one by key, or all of them.
#[skill(title = "Read notes", read_only, open_world = false, tags = ["notes"])]
pub async fn note_read(
    /// The note to read; leave out to read every note.
    key: Option<String>,
    scratchpads: State<Scratchpads>,
    ctx: SkillContext,
) -> Result<BTreeMap<String, String>, SkillError> {
    let pads = scratchpads.lock();
    let notes = pads.threads.get(&ctx.thread_id).map(|pad| &pad.notes);
    match key.as_deref().map(str::trim) {
        None => Ok(notes.cloned().unwrap_or_default()),
        Some(key) => match notes.and_then(|notes| notes.get(key)) {
            Some(text) => Ok(BTreeMap::from([(key.to_owned(), text.clone())])),
            None => {
                let known: Vec<&str> = notes
                    .into_iter()
                    .flat_map(|notes| notes.keys())
                    .map(String::as_str)
                    .collect();
                if known.is_empty() {
                    Err(format!("no note `{key}`; this conversation has no notes yet").into())
                } else {
                    Err(format!("no note `{key}`; the notes are: {}", known.join(", ")).into())
                }
            }
        },
    }
}
