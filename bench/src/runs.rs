//! The run log of the bench skill `echo_call` (`start <call_id>` when a run begins, `done <call_id>` when it returns):
//! how many times each call's skill ran, across bridge processes, and which runs had completed before a kill.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Where a row's bridges note their runs.
#[derive(Debug, Clone)]
pub struct RunLog {
    path: PathBuf,
}

impl RunLog {
    /// The log at `path` (created by the first run).
    pub fn new(path: PathBuf) -> RunLog {
        RunLog { path }
    }

    /// Its path, for the bridge's environment.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The runs noted so far.
    pub fn read(&self) -> Result<Runs> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Runs::parse(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Runs::default()),
            Err(error) => Err(error).with_context(|| format!("reading {}", self.path.display())),
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Start,
    Done,
}

/// The runs noted in a log, in order.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    events: Vec<(Event, String)>,
}

impl Runs {
    fn parse(text: &str) -> Result<Runs> {
        let mut events = Vec::new();
        for line in text.lines() {
            let event = match line.split_once(' ') {
                Some(("start", call)) => (Event::Start, call.to_owned()),
                Some(("done", call)) => (Event::Done, call.to_owned()),
                _ => bail!("unexpected run log line {line:?}"),
            };
            events.push(event);
        }
        Ok(Runs { events })
    }

    /// Lines read.
    pub fn lines(&self) -> usize {
        self.events.len()
    }

    /// Runs begun.
    pub fn started(&self) -> usize {
        self.events.iter().filter(|(event, _)| *event == Event::Start).count()
    }

    /// The calls whose run has returned, at least once.
    pub fn completed(&self) -> HashSet<&str> {
        self.events
            .iter()
            .filter(|(event, _)| *event == Event::Done)
            .map(|(_, call)| call.as_str())
            .collect()
    }

    /// How many runs of each call began.
    pub fn starts(&self) -> HashMap<&str, usize> {
        let mut starts: HashMap<&str, usize> = HashMap::new();
        for (event, call) in &self.events {
            if *event == Event::Start {
                *starts.entry(call).or_default() += 1;
            }
        }
        starts
    }

    /// Runs beyond each call's first.
    pub fn reruns(&self) -> usize {
        self.starts().values().map(|n| n - 1).sum()
    }

    /// The calls that ran again after the first `before` lines (the runs of a process that was killed) although a
    /// run of theirs had completed within them.
    pub fn completed_then_rerun(&self, before: usize) -> Vec<&str> {
        let (earlier, later) = self.events.split_at(before.min(self.events.len()));
        let completed: HashSet<&str> = earlier
            .iter()
            .filter(|(event, _)| *event == Event::Done)
            .map(|(_, call)| call.as_str())
            .collect();
        let mut rerun: Vec<&str> = later
            .iter()
            .filter(|(event, call)| *event == Event::Start && completed.contains(call.as_str()))
            .map(|(_, call)| call.as_str())
            .collect();
        rerun.sort_unstable();
        rerun.dedup();
        rerun
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reruns_and_completed_runs_that_ran_again() {
        let text = "start call_1\nstart call_2\ndone call_1\nstart call_3\n\
                    start call_2\nstart call_1\ndone call_2\ndone call_1\ndone call_3\nstart call_3\n";
        let runs = Runs::parse(text).unwrap();
        assert_eq!(runs.lines(), 10);
        assert_eq!(runs.started(), 6);
        assert_eq!(runs.reruns(), 3);
        assert_eq!(runs.completed().len(), 3);
        // Killed after 4 lines: call_1 had completed, call_2 and call_3 were running.
        assert_eq!(runs.completed_then_rerun(4), ["call_1"]);
        assert!(Runs::parse("begin call_1\n").is_err());
    }
}
